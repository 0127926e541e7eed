"""`python -m services.registry.demo --url ... --key ...`: load the demo over HTTP."""

import sys

from services.registry.demo.scenario import main

sys.exit(main())
