"""What a caller asks of the shipments service, one command per intent (issue 18): routes
build them after validation and authorisation, handlers.py runs each."""
