"""Small helpers shared by the top of the data flow (hub, export): no model or data code."""
