"""`python -m services.pledges.demo --url ... --key ...`: the demo data over HTTP."""

import sys

from services.pledges.demo import main

sys.exit(main())
