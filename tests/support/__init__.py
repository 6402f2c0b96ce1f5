"""Helpers shared by the test suites: real peers (Mosquitto) and independent decoders."""
