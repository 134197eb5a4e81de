"""The HTTP edge: Litestar routes, dependency wiring and error mapping. Domain code never
imports from here."""
