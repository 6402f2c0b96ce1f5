"""A plant simulator: Modbus TCP remote I/O devices on loopback whose inputs follow simulated physics.

The example PLCs run closed control loops through their `io.fieldDevices` against these devices, exactly as they
would against real remote I/O.
"""
