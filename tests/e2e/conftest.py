"""End-to-end fixtures: the whole simulated edge site with the example production line applied.

- `site`, `probe`, `sparkplug`, `line`: one site for the session, the line applied once.
- `faults`: the failures the site can cause (SiteFaults: power_off/power_on, partition/heal,
  stop_api_server/start_api_server); whatever a test breaks is restored at its teardown.
- `plant_writes`: the plant devices' write records, from the start of the test, and who wrote them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopfloor_localsite.plant.write_record import DeviceWrite, PodAddressBook, overlaps, writers_in_order
from shopfloor_localsite.site.edgesite import EdgeSite, SiteFaults, SiteOptions
from shopfloor_localsite.site.launch import PART_OF_LABEL, PART_OF_VALUE
from shopfloor_localsite.site.line import LINE, apply_production_line, wait_line_running
from shopfloor_localsite.site.probes import SiteProbe
from shopfloor_localsite.site.sparkplug_watch import SparkplugWatch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def site() -> Iterator[EdgeSite]:
    events: list[str] = []
    edge = EdgeSite(SiteOptions(on_event=events.append))
    edge.start()
    try:
        yield edge
    finally:
        if edge.runner is not None:
            for key, tail in edge.runner.log_tails(15).items():
                print(f"--- {key}\n{tail}")
        if edge.operator is not None:
            print(f"--- operator\n{edge.operator.log_tail(40)}")
        print("--- site events\n" + "\n".join(events[-40:]))
        edge.stop()


@pytest.fixture(scope="session")
def probe(site: EdgeSite) -> SiteProbe:
    return SiteProbe(site)


@pytest.fixture(scope="session")
def sparkplug(site: EdgeSite) -> Iterator[SparkplugWatch]:
    assert site.broker is not None
    with SparkplugWatch(site.broker.port, "plant-a") as watch:
        yield watch


@pytest.fixture(scope="session")
def line(site: EdgeSite, probe: SiteProbe, sparkplug: SparkplugWatch) -> str:
    """The production line applied and both PLCs Running (subscribed to Sparkplug before the bridge starts)."""
    apply_production_line(site, probe)
    wait_line_running(probe)
    return LINE


@pytest.fixture
def faults(site: EdgeSite) -> Iterator[SiteFaults]:
    """One call per failure; at teardown the API server is started, partitions healed, nodes powered on, and the
    nodes touched are Ready again, so the next test starts on a whole site."""
    assert site.faults is not None
    try:
        yield site.faults
    finally:
        site.faults.restore()


class PlantWrites:
    """The write records of the plant's devices since the fixture started, and who wrote them (pod names, from the
    writers' pod addresses)."""

    def __init__(self, site: EdgeSite) -> None:
        assert site.plant is not None, "the site runs without its plant"
        self.site = site
        self.marks = {name: len(device.writes) for name, device in site.plant.devices.items()}
        self.pods = PodAddressBook(site.api, label_selector=f"{PART_OF_LABEL}={PART_OF_VALUE}")

    def writer(self, address: str) -> str:
        """`namespace/pod` of the workload that had `address` (as the runner started it, else from the API)."""
        assert self.site.runner is not None
        return self.site.runner.pod_addresses.get(address) or self.pods(address)

    def __call__(self, device: str) -> list[DeviceWrite]:
        """`plant_writes("tank-io")`: that device's writes since the test started, in order."""
        return self.site.device(device).writes_since(self.marks[device])

    def writers(self, device: str) -> list[str]:
        """The pods that wrote to `device`, in the order of their first write."""
        return writers_in_order(self(device), self.writer)

    def overlaps(self, device: str) -> list[DeviceWrite]:
        """Writes to `device` from a controller after another one had started writing; [] = one at a time."""
        return overlaps(self(device), self.writer)


@pytest.fixture
def plant_writes(site: EdgeSite) -> PlantWrites:
    return PlantWrites(site)
