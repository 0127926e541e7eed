"""`python -m services.shipments.demo --url ... --key ...` (see the package's docstring)."""

import sys

from services.shipments.demo import main

sys.exit(main())
