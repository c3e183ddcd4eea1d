"""Carrier gateways on the switches: listing, plan, engine."""
