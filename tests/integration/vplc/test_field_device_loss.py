"""The I/O scanner tells a missed exchange from a lost device: a device that drops out briefly (a restart, a late
answer on a busy network) turns quality uncertain and is reconnected; only silence longer than the loss time
counts as loss."""

from __future__ import annotations

import asyncio
import contextlib

from shopfloor_localsite.plant.plant import Plant
from shopfloor_vplc.cancelling import cancel_and_wait
from shopfloor_vplc.field_io import QUALITY_GOOD, QUALITY_UNCERTAIN, DeviceConfig, DeviceLink
from shopfloor_vplc.modbus_codec import Binding, Table
from tests.support.waiting import async_wait_for, bounded


def tank_link(port: int, loss_after_s: float) -> DeviceLink:
    return DeviceLink(
        DeviceConfig(
            name="tank-io",
            host="127.0.0.1",
            port=port,
            unit_id=1,
            poll_interval_s=0.02,
            inputs=[Binding("LevelRaw", Table.INPUT_REGISTERS, 0, "UINT")],
            outputs=[Binding("Valve", Table.COILS, 0, "BOOL")],
            hold_last_value=False,
            timeout_s=0.3,
            loss_after_s=loss_after_s,
        )
    )


async def test_a_short_outage_is_a_missed_exchange_and_a_long_one_is_a_loss() -> None:
    plant = Plant()
    await bounded(plant.start(), "the plant's devices to start")
    device = plant.devices["tank-io"]
    link = tank_link(device.port, loss_after_s=2.0)
    polling = asyncio.create_task(link.poll_forever())
    try:
        await async_wait_for(lambda: _true(link.quality == QUALITY_GOOD), timeout=10, what="first good poll")
        qualities: set[int] = set()

        async def watch() -> None:
            while True:
                qualities.add(link.quality)
                assert not link.lost, "a short outage must not count as a lost device"
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await bounded(device.stop(), "the device to go away")
        await async_wait_for(lambda: _true(QUALITY_UNCERTAIN in qualities), timeout=5, what="quality uncertain")
        await bounded(device.start(), "the device to come back")
        await async_wait_for(lambda: _true(link.quality == QUALITY_GOOD), timeout=5, what="good again")
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bounded(watcher, "the quality watcher to end")

        await bounded(device.stop(), "the device to go away again")
        await async_wait_for(lambda: _true(link.lost), timeout=10, what="lost after the loss time")
        await bounded(device.start(), "the device to come back again")
        await async_wait_for(lambda: _true(not link.lost and link.healthy), timeout=10, what="recovered")
    finally:
        # A poll cancelled as its answer arrives carries on (shopfloor_vplc.cancelling): cancelled until it ends.
        assert await cancel_and_wait([polling], "the poll loop"), "the poll loop did not end"
        link.close()
        await bounded(plant.stop(), "the plant's devices to stop")


async def _true(value: bool) -> bool:
    return value
