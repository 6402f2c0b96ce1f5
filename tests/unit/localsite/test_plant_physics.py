"""The plant's process models."""

from __future__ import annotations

from shopfloor_localsite.plant.physics import Conveyor, Tank


def run(model: Tank | Conveyor, seconds: float, step: float = 0.01) -> None:
    for _ in range(round(seconds / step)):
        model.step(step)


def test_tank_fills_through_the_valve_and_drains_through_the_pump() -> None:
    tank = Tank(level=50.0, inflow_rate=4.0, outflow_rate=2.0)
    tank.valve_open = True
    run(tank, 5)
    assert abs(tank.level - 70.0) < 1e-6
    tank.pump_running = True
    run(tank, 5)
    assert abs(tank.level - 80.0) < 1e-6
    tank.valve_open = False
    run(tank, 10)
    assert abs(tank.level - 60.0) < 1e-6
    assert tank.level_raw == 600


def test_tank_saturates_and_trips_its_level_switches() -> None:
    tank = Tank(level=90.0)
    tank.valve_open = True
    run(tank, 10)
    assert tank.level == 100.0 and tank.high_switch and not tank.low_switch
    tank.valve_open, tank.pump_running = False, True
    run(tank, 60)
    assert tank.level == 0.0 and tank.low_switch and not tank.high_switch


def test_parts_wait_at_the_entry_until_the_belt_runs_then_reach_the_exit() -> None:
    belt = Conveyor(length=2.0, speed=0.5, arrival_interval=3.0)
    run(belt, 10)
    assert len(belt.parts) == 1 and belt.entry_eye and not belt.exit_eye
    belt.motor_running = True
    seen_exit = False
    for _ in range(500):
        belt.step(0.01)
        seen_exit = seen_exit or belt.exit_eye
    assert seen_exit
    run(belt, 20)
    assert belt.delivered >= 5
