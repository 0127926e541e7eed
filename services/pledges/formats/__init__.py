"""What pledges exports beyond its JSON: IATI 2.03 activity XML (iati.py loads it, iati_xml.py
writes it) and report tables as CSV with HXL hashtags (tables.py)."""
