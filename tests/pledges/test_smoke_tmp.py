import httpx
from services.pledges import demo
from shared.auth import Role
from tests.pledges.conftest import PledgesApi


async def test_smoke(api: PledgesApi) -> None:
    headers = await api.as_("twinaid", Role.REGISTRY_ADMIN)
    api.client.headers.update(headers)
    print(await demo.load(api.client))
    print(await demo.load(api.client))
    for n in (await api.get("/v1/needs"))["items"]:
        print(n["need_id"], n["status"], n["target"], n["coverage"])
    for p in (await api.get("/v1/pledges"))["items"]:
        print(p["pledge_id"], p["status"], p["lines"])
    t = await api.get("/v1/reports/totals", convert_to="EUR", rate=["GBP:1.1650:2023-02-20"])
    for r in t["rows"]:
        print(r)
    print(t["summary"])
    r = await api.client.get("/v1/reports/needs", params={"format": "csv"})
    print(r.text)
