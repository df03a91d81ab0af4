"""A resident's report end to end in a real headless Chromium on a phone viewport, against
a real `guanjia gateway run` with a site file: the resident opens a building's QR URL,
reports with a photo (the page's script solves the proof of work), lands on the tracking
page; the ticket is in the operator's queue, routed to the building's grid and its on-duty
butler; the butler resolves it with a photo; the tracking page shows the progress without
anyone's personal data, and the resident rates the work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.residents.tokens import derive_key, place_token
from tests.console.conftest import assert_clean, sign_in, watch_errors
from tests.console.harness import GATEWAY_JWT_SECRET, PHONE, WALL, Console

pytestmark = pytest.mark.mqtt

PHONE_NUMBER = "13912345678"
DESCRIPTION = "3号楼大堂门口堆了装修垃圾"


def qr_url(console: Console, place_id: str) -> str:
    """What the building's printed QR code holds (`guanjia site qr` prints the same)."""
    token = place_token(derive_key(GATEWAY_JWT_SECRET, "place"), "site-1", place_id)
    return f"{console.url}/r/{token}"


def test_resident_reports_with_a_photo_tracks_and_rates(
    browser: Any, sites_console: Console, shots: Callable[[Any, str], Path], tmp_path: Path
) -> None:
    console = sites_console
    resident = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True).new_page()
    watch_errors(resident)
    resident.goto(qr_url(console, "b3-lobby"))
    assert "龙海家园 · 3号楼大堂" in resident.inner_text("p.where")
    shots(resident, "resident-report")
    resident.get_by_label("垃圾杂物").check()
    resident.get_by_label("说明").fill(DESCRIPTION)
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(console.photo)
    resident.get_by_label("拍照").set_input_files(str(photo))
    resident.get_by_label("手机号").fill(PHONE_NUMBER)
    resident.get_by_role("button", name="提交").click()
    resident.wait_for_url("**/r/track/**", timeout=15_000)
    tracking = resident.url
    assert "已受理" in resident.inner_text("#steps")
    shots(resident, "resident-track")

    # The operator's queue has it, routed to the lobby's grid and its on-duty butler.
    operator = sign_in(browser, console, "op", WALL)
    operator.goto(f"{console.url}/console/queue?category=litter")
    row = operator.locator("#queue tr.row", has_text="g-site-1").first
    row.wait_for()
    assert "worker" in row.inner_text()
    ticket_path = row.get_attribute("data-href")
    assert ticket_path is not None
    operator.goto(console.url + ticket_path)
    assert operator.locator("ul.photos img").count() == 1  # the resident's photo
    operator.get_by_label("处理人").fill("worker")
    operator.get_by_role("button", name="派单").click()
    operator.wait_for_load_state()
    assert "已派单" in operator.locator("p.meta").inner_text()

    butler = sign_in(browser, console, "worker", PHONE)
    butler.goto(console.url + ticket_path.replace("/tickets/", "/my/"))
    butler.get_by_role("button", name="接单").click()
    butler.wait_for_load_state()
    butler.get_by_label("拍照或选择照片").set_input_files(str(photo))
    butler.get_by_role("button", name="上传照片").click()
    butler.locator("p.notice", has_text="照片已上传").wait_for()
    butler.get_by_label("处理说明").fill("已清运，联系人王师傅")
    butler.get_by_role("button", name="解决").click()
    butler.wait_for_load_state()
    assert "已解决" in butler.locator("p.meta").inner_text()

    resident.goto(tracking)
    steps = resident.inner_text("#steps")
    for step in ("已受理", "已派人", "处理中", "已处理"):
        assert step in steps, steps
    body = resident.inner_text("body")
    for private in (PHONE_NUMBER, DESCRIPTION, "王师傅", "worker", "op", ticket_path):
        assert private not in body, private
    resident.get_by_label("5 星").check()
    resident.get_by_label("意见").fill("很快，谢谢")
    resident.get_by_role("button", name="提交评价").click()
    resident.locator("p.notice", has_text="谢谢您的评价").wait_for()
    assert "您的评价：5 星" in resident.inner_text("#rated")
    shots(resident, "resident-rated")

    # The rating shows in the figures (and on the ticket page's resident part).
    operator.goto(f"{console.url}/console/figures?site=site-1&group_by=category")
    litter = operator.locator("#figures tr", has_text="乱堆乱放").first
    assert "5.00 (1)" in litter.inner_text()
    operator.locator(".chart[data-drawn='1']").first.wait_for()
    shots(operator, "figures")
    operator.goto(console.url + ticket_path)
    part = operator.inner_text("#resident-report")
    for shown in (DESCRIPTION, PHONE_NUMBER, "扫码随手拍", "5 星"):
        assert shown in part, shown
    shots(operator, "ticket-resident-report")

    for page in (resident, operator, butler):
        assert_clean(page)
    for context in (resident.context, operator.context, butler.context):
        context.close()
