"""First contact with kopf peering: make a missing peering object loud instead of silent.

With peering on (not `--standalone`), kopf handles nothing until its peering object exists (`ClusterKopfPeering
<peering_name>` cluster-wide, `KopfPeering <peering_name>` in each watched namespace), and says nothing about it.
At start the operator checks for those objects, creates the missing ones when it may (never the kopf.dev CRDs),
and otherwise logs one ERROR that names exactly what to create, repeated every `REPEAT_ERROR_S` until it exists.

`decide` is pure (settings and what was found in, what to do out); `PeeringCheck` asks the API; `watch_over`
is the loop the operator runs next to kopf.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubernetes import client

from shopfloor_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

GROUP, VERSION = "kopf.dev", "v1"
CRDS_FILE = "crds/kopf-peering.yaml"
CHECK_INTERVAL_S = 5.0  # how often a missing object or CRD is looked for again
REPEAT_ERROR_S = 30.0  # how often an unchanged ERROR is said again
REQUEST_TIMEOUT = (3.0, 10.0)  # connect, read: short, so a stopping operator never waits long for this check


class Found(Enum):
    PRESENT = "present"
    ABSENT = "absent"  # its CRD is served, the object is not there (creating it not tried yet)
    FORBIDDEN = "forbidden"  # absent, and this operator's credentials may not create it
    NO_CRD = "no-crd"  # the kopf.dev CRD of its kind is not installed (or not established yet)
    UNKNOWN = "unknown"  # could not tell: API unreachable, or another error


@dataclass(frozen=True)
class PeeringObject:
    kind: str
    plural: str
    name: str
    namespace: str | None = None

    @property
    def crd(self) -> str:
        return f"{self.plural}.{GROUP}"

    def manifest(self) -> dict[str, Any]:
        metadata: dict[str, str] = {"name": self.name}
        if self.namespace:
            metadata["namespace"] = self.namespace
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": self.kind, "metadata": metadata}

    def describe(self) -> str:
        where = f'in namespace "{self.namespace}"' if self.namespace else "(cluster-wide)"
        return f'{self.kind} "{self.name}" {where}'

    def kubectl(self) -> str:
        return f"echo '{json.dumps(self.manifest())}' | kubectl apply -f -"


def wanted(settings: OperatorSettings) -> list[PeeringObject]:
    """The peering objects kopf needs with these settings: none standalone."""
    if settings.standalone:
        return []
    if not settings.namespaces:
        return [PeeringObject("ClusterKopfPeering", "clusterkopfpeerings", settings.peering_name)]
    return [PeeringObject("KopfPeering", "kopfpeerings", settings.peering_name, ns) for ns in settings.namespaces]


@dataclass(frozen=True)
class Decision:
    create: tuple[PeeringObject, ...] = ()  # try to create these now, then decide again
    error: str = ""  # what a human has to do before anything is handled (one message)
    warning: str = ""  # could not check some objects; looked for again
    done: bool = False  # every object exists: nothing more to do


def decide(
    settings: OperatorSettings, found: Mapping[PeeringObject, Found], reasons: Mapping[PeeringObject, str] | None = None
) -> Decision:
    """What to do, from what was found for each of `wanted(settings)` (an object not in `found` is UNKNOWN)."""
    objects = wanted(settings)
    states = {obj: found.get(obj, Found.UNKNOWN) for obj in objects}
    if all(state is Found.PRESENT for state in states.values()):
        return Decision(done=True)
    absent = tuple(obj for obj, state in states.items() if state is Found.ABSENT)
    if absent:
        return Decision(create=absent)
    no_crd = [obj for obj, state in states.items() if state is Found.NO_CRD]
    forbidden = [obj for obj, state in states.items() if state is Found.FORBIDDEN]
    unknown = [obj for obj, state in states.items() if state is Found.UNKNOWN]
    warning = ""
    if unknown:
        why = "; ".join(f"{obj.describe()}: {(reasons or {}).get(obj) or 'no answer'}" for obj in unknown)
        warning = f"Could not check the kopf peering objects ({why}); looking again in {CHECK_INTERVAL_S:.0f} s."
    return Decision(error=_error(settings, no_crd, forbidden) if no_crd or forbidden else "", warning=warning)


def _error(settings: OperatorSettings, no_crd: list[PeeringObject], forbidden: list[PeeringObject]) -> str:
    missing = no_crd + forbidden
    parts = [
        "Nothing will be reconciled: peering is on (not --standalone) and kopf waits, silently, for its peering "
        f"object{'s' if len(missing) > 1 else ''} {', '.join(obj.describe() for obj in missing)}."
    ]
    if no_crd:
        crds = sorted({obj.crd for obj in no_crd})
        parts.append(
            f"The CRD {', '.join(crds)} is not installed, so it cannot exist: install kopf's peering CRDs with "
            f"`kubectl apply -f {CRDS_FILE}` (`helm install` of charts/shopfloor installs them from the chart's "
            "crds/), then create the object (this operator tries to itself):"
        )
    if forbidden:
        parts.append(
            "This operator may not create it (RBAC: no `create` on "
            f"{', '.join(sorted({obj.crd for obj in forbidden}))}). Create it:"
        )
    parts.append("; ".join(f"`{obj.kubectl()}`" for obj in missing) + ".")
    if not settings.namespaces:
        parts.append("With the Helm chart, `--set replicas=2` (or more) creates the ClusterKopfPeering.")
    parts.append(
        "Or run a single replica without peering: `--standalone true` (SHOPFLOOR_STANDALONE=true). "
        f"Looking for it every {CHECK_INTERVAL_S:.0f} s; saying this again every {REPEAT_ERROR_S:.0f} s."
    )
    return " ".join(parts)


class PeeringCheck:
    """One look at the API (blocking; run it in a worker thread): find the objects, create the missing ones."""

    def __init__(self, api_client: client.ApiClient, settings: OperatorSettings) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.settings = settings
        self.created: list[PeeringObject] = []

    def run(self) -> Decision:
        found, reasons = self.observe()
        decision = decide(self.settings, found, reasons)
        if decision.create:
            for obj in decision.create:
                found[obj], reasons[obj] = self.create(obj)
            decision = decide(self.settings, found, reasons)
        return decision

    def observe(self) -> tuple[dict[PeeringObject, Found], dict[PeeringObject, str]]:
        objects = wanted(self.settings)
        found: dict[PeeringObject, Found] = {}
        reasons: dict[PeeringObject, str] = {}
        try:
            served = {
                r.name
                for r in self.custom.get_api_resources(GROUP, VERSION, _request_timeout=REQUEST_TIMEOUT).resources
            }
        except client.ApiException as error:
            if error.status != 404:  # 404: no kopf.dev/v1 at all
                return {}, dict.fromkeys(objects, _reason(error))
            served = set()
        except Exception as error:  # unreachable, timed out
            return {}, dict.fromkeys(objects, _reason(error))
        for obj in objects:
            if obj.plural not in served:
                found[obj] = Found.NO_CRD
                continue
            try:
                self._get(obj)
                found[obj] = Found.PRESENT
            except client.ApiException as error:
                if error.status in (403, 404):  # 403: cannot read it; creating it tells whether it is there
                    found[obj] = Found.ABSENT
                else:
                    found[obj], reasons[obj] = Found.UNKNOWN, _reason(error)
            except Exception as error:
                found[obj], reasons[obj] = Found.UNKNOWN, _reason(error)
        return found, reasons

    def create(self, obj: PeeringObject) -> tuple[Found, str]:
        try:
            if obj.namespace:
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, obj.namespace, obj.plural, obj.manifest(), _request_timeout=REQUEST_TIMEOUT
                )
            else:
                self.custom.create_cluster_custom_object(
                    GROUP, VERSION, obj.plural, obj.manifest(), _request_timeout=REQUEST_TIMEOUT
                )
        except client.ApiException as error:
            if error.status == 409:  # another replica (or a human) was quicker
                return Found.PRESENT, ""
            if error.status == 403:
                return Found.FORBIDDEN, _reason(error)
            return Found.UNKNOWN, _reason(error)  # 404: e.g. the namespace does not exist
        except Exception as error:
            return Found.UNKNOWN, _reason(error)
        self.created.append(obj)
        log.info("Created the kopf peering object %s: peering was on and it was missing.", obj.describe())
        return Found.PRESENT, ""

    def _get(self, obj: PeeringObject) -> None:
        if obj.namespace:
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, obj.namespace, obj.plural, obj.name, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            self.custom.get_cluster_custom_object(
                GROUP, VERSION, obj.plural, obj.name, _request_timeout=REQUEST_TIMEOUT
            )


def _reason(error: Exception) -> str:
    if isinstance(error, client.ApiException):
        try:
            return f"{error.status} {json.loads(error.body or '{}').get('message', error.reason)}"
        except ValueError:
            return f"{error.status} {error.reason}"
    return f"{type(error).__name__}: {str(error)[:200]}"


async def watch_over(
    api_client: client.ApiClient,
    settings: OperatorSettings,
    check_interval: float = CHECK_INTERVAL_S,
    repeat_every: float = REPEAT_ERROR_S,
) -> None:
    """Until every peering object exists: create what may be created, say what must be; then say it was found."""
    if settings.standalone:
        return
    check = PeeringCheck(api_client, settings)
    said, said_at = "", 0.0
    while True:
        try:
            decision = await asyncio.to_thread(check.run)
        except Exception:  # a bug here must not stop the operator
            log.exception("Checking the kopf peering objects failed; trying again in %.0f s.", check_interval)
            await asyncio.sleep(check_interval)
            continue
        if decision.done:
            objects = ", ".join(obj.describe() for obj in wanted(settings))
            if said:
                log.info("Found the kopf peering object %s: reconciling starts.", objects)
            elif not check.created:
                log.info("Peering: kopf peering object %s found.", objects)
            return
        message = decision.error or decision.warning
        now = time.monotonic()
        if message and (message != said or now - said_at >= repeat_every):
            log.log(logging.ERROR if decision.error else logging.WARNING, "%s", message)
            said, said_at = message, now
        await asyncio.sleep(check_interval)
