"""The customer portal: each customer's own page at `/portal/<token>` (docs/portal.md).

`links` signs, reads and revokes the links (ADR 0055); `pages` serves the page and its forms,
which send the receivable's commands as the customer (`customer:<id>`, ADR 0056) through the
same application service and command declaration as the API and the console. Its templates,
stylesheet and catalogs are its own (`templates/`, `static/`, `locale/`).
"""
