"""A user's rights over their data: export everything held on them, or delete it all."""
