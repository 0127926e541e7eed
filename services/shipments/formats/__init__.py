"""The shipments service's exports in other formats: a convoy's steps as GS1 EPCIS 2.0 JSON-LD
(epcis.py), convoys, manifests, deliveries and discrepancies as HXL-tagged CSV (hxl.py)."""
