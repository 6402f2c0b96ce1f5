"""End-to-end fixtures: the whole simulated edge site with the example production line applied.

- `site`, `probe`, `sparkplug`, `line`: one site for the session, the line applied once.
- `steady_line`: the line brought back to the examples' steady state before a test, so that tests using it pass in
  any order (`pytestmark = pytest.mark.usefixtures("steady_line")`).
- `faults`: the failures the site can cause (SiteFaults: power_off/power_on, partition/heal,
  stop_api_server/start_api_server); whatever a test breaks is restored at its teardown.
- `plant_writes`: the plant devices' write records, from the start of the test, and who wrote them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.plant.write_record import DeviceWrite, PodAddressBook, overlaps, writers_in_order
from shopfloor_localsite.site.edgesite import EdgeSite, SiteFaults, SiteOptions
from shopfloor_localsite.site.launch import PART_OF_LABEL, PART_OF_VALUE
from shopfloor_localsite.site.line import EXAMPLES, LINE, PLCS, apply_production_line, wait_line_running
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
def steady_line(line: str, site: EdgeSite, probe: SiteProbe) -> str:
    """The production line as the examples describe it, steady, whatever the test before did: applied again if a
    test deleted it, every node Ready, both PLCs Running their examples' programs, verified, each in one runtime
    that holds its Lease. Test modules whose tests must pass in any order use it for every test."""
    if namespace_phase(probe, line) != "Active":
        probe.wait(lambda: namespace_phase(probe, line) is None, 180, f"namespace {line} deleted")
        apply_production_line(site, probe)
    else:
        site.kubectl("apply", "-f", str(EXAMPLES))  # specs back to the examples; nothing changes if none changed
    probe.wait(lambda: nodes_ready(probe), 120, "every node Ready")
    wait_line_running(probe)
    for name in PLCS:
        probe.wait(lambda plc=name: steady(probe, site, plc), 180, f"{name} steady on its example program")
    return line


def namespace_phase(probe: SiteProbe, name: str) -> str | None:
    """Active, Terminating, or None once the namespace is gone."""
    try:
        return str(probe.core.read_namespace(name).status.phase)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def nodes_ready(probe: SiteProbe) -> bool:
    """Every node Ready and without the taints of a node that was lost (a PLC can move to any of them)."""
    for node in probe.core.list_node().items:
        ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
        lost = [t.key for t in node.spec.taints or [] if t.key in LOST_NODE_TAINTS]
        if ready != "True" or lost:
            return False
    return True


LOST_NODE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


def steady(probe: SiteProbe, site: EdgeSite, plc: str) -> bool:
    """`plc` Running the revision its spec asks for, verified, in one runtime that holds its Lease, no standby."""
    resource = probe.get(LINE, plc)
    status = resource.get("status") or {}
    program = status.get("program") or {}
    if status.get("observedGeneration") != resource["metadata"]["generation"] or status.get("phase") != "Running":
        return False
    if not program.get("desiredRevision") == program.get("activeRevision") == program.get("lastKnownGoodRevision"):
        return False
    if status.get("redundancy") or probe.lease(LINE, plc).get("holder") != status.get("podName"):
        return False
    assert site.runner is not None
    runtimes = [w for w in site.runner.workloads() if w["namespace"] == LINE and w["owner"] == plc]
    return [w["pod"] for w in runtimes if w["running"]] == [status.get("podName")]


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
