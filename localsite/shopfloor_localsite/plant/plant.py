"""The example plant: a tank level loop and a conveyor, each behind its own remote I/O device.

Point maps (0-based addresses, unit id 1):

| device | table | address | meaning |
| --- | --- | --- | --- |
| tank-io | coils | 0 | inflow valve open |
| tank-io | coils | 1 | outlet pump running |
| tank-io | input registers | 0 | level, 0..1000 = 0..100 % |
| tank-io | discrete inputs | 0 | high level switch (>= 95 %) |
| tank-io | discrete inputs | 1 | low level switch (<= 5 %) |
| conveyor-io | coils | 0 | belt motor running |
| conveyor-io | discrete inputs | 0 | entry photo-eye |
| conveyor-io | discrete inputs | 1 | exit photo-eye |
| conveyor-io | input registers | 0 | parts delivered (device's own count, for checking the PLC's) |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shopfloor_localsite.plant.device import PointMap, RemoteIODevice
from shopfloor_localsite.plant.physics import Conveyor, Tank

TANK_POINTS = PointMap(
    coils={0: "valve_open", 1: "pump_running"},
    discrete_inputs={0: "high_switch", 1: "low_switch"},
    input_registers={0: "level_raw"},
)
CONVEYOR_POINTS = PointMap(
    coils={0: "motor_running"},
    discrete_inputs={0: "entry_eye", 1: "exit_eye"},
    input_registers={0: "delivered"},
)


@dataclass
class Plant:
    tank: Tank = field(default_factory=Tank)
    conveyor: Conveyor = field(default_factory=Conveyor)
    devices: dict[str, RemoteIODevice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.devices = {
            "tank-io": RemoteIODevice("tank-io", self.tank, TANK_POINTS),
            "conveyor-io": RemoteIODevice("conveyor-io", self.conveyor, CONVEYOR_POINTS),
        }

    async def start(self) -> None:
        for device in self.devices.values():
            await device.start()

    async def stop(self) -> None:
        for device in self.devices.values():
            await device.stop()
