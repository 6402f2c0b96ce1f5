"""Process models, pure and stepped by elapsed time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tank:
    """A tank filled through an on/off inflow valve and emptied by an outlet pump.

    Level is in percent. The valve adds `inflow_rate` %/s, the pump removes `outflow_rate` %/s while there is
    liquid to pump; a full tank overflows (level saturates at 100).
    """

    level: float = 50.0
    inflow_rate: float = 4.0
    outflow_rate: float = 2.0
    valve_open: bool = False
    pump_running: bool = False
    high_switch_at: float = 95.0
    low_switch_at: float = 5.0

    def step(self, seconds: float) -> None:
        change = (self.inflow_rate if self.valve_open else 0.0) - (self.outflow_rate if self.pump_running else 0.0)
        self.level = min(100.0, max(0.0, self.level + change * seconds))

    @property
    def high_switch(self) -> bool:
        return self.level >= self.high_switch_at

    @property
    def low_switch(self) -> bool:
        return self.level <= self.low_switch_at

    @property
    def level_raw(self) -> int:
        """The level transmitter's reading: 0..1000 = 0..100 %."""
        return round(self.level * 10)


@dataclass
class Conveyor:
    """A belt carrying parts from an entry photo-eye to an exit photo-eye.

    A part arrives at the entry every `arrival_interval` seconds while the entry is clear; parts move at `speed`
    m/s while the motor runs and leave the belt past `length`. Positions are of each part's leading edge.
    """

    length: float = 2.0
    speed: float = 0.5
    part_length: float = 0.2
    arrival_interval: float = 3.0
    motor_running: bool = False
    parts: list[float] = field(default_factory=list)
    delivered: int = 0
    _until_arrival: float = 0.0

    def step(self, seconds: float) -> None:
        if self.motor_running:
            self.parts = [position + self.speed * seconds for position in self.parts]
            leaving = [p for p in self.parts if p - self.part_length >= self.length]
            self.delivered += len(leaving)
            self.parts = [p for p in self.parts if p - self.part_length < self.length]
        self._until_arrival -= seconds
        if self._until_arrival <= 0 and not self.entry_blocked:
            self.parts.append(self.part_length)
            self._until_arrival = self.arrival_interval

    def _occupied(self, start: float, end: float) -> bool:
        return any(p > start and p - self.part_length < end for p in self.parts)

    @property
    def entry_blocked(self) -> bool:
        return self._occupied(0.0, self.part_length)

    @property
    def entry_eye(self) -> bool:
        return self._occupied(0.0, 0.25)

    @property
    def exit_eye(self) -> bool:
        return self._occupied(self.length - 0.25, self.length)
