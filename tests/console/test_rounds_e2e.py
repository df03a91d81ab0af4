"""The butler's rounds on a 390×844 phone in a real headless Chromium, against a real
`guanjia gateway run` with the test site file: today's rounds, a checkpoint opened from the
list, the checklist ticked with one failed item → a ticket at that checkpoint in the
butler's own list; a checkpoint whose checklist needs a photo is refused without one and
taken with one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import assert_clean, sign_in
from tests.console.harness import PHONE, Console

pytestmark = pytest.mark.mqtt


def test_butler_ticks_a_checklist_and_a_failed_item_opens_a_ticket(
    browser: Any, sites_console: Console, shots: Callable[[Any, str], Path], tmp_path: Path
) -> None:
    console = sites_console
    phone = sign_in(browser, console, "worker", PHONE)
    phone.get_by_role("link", name="巡检").click()
    phone.wait_for_url("**/console/rounds")
    assert "消防巡检" in phone.inner_text("main")
    shots(phone, "rounds-today")
    phone.goto(f"{console.url}/console/my")
    before = phone.locator("a.my-card", has_text="巡检不合格").count()

    phone.goto(f"{console.url}/console/rounds")
    phone.locator("li", has_text="3号楼灭火器").get_by_role("link", name="检查").first.click()
    phone.wait_for_url("**/checkpoints/tag-ext1")
    phone.locator("#item-pressure").get_by_label("异常").check()
    phone.locator("#item-seal").get_by_label("正常").check()
    phone.get_by_label("备注").fill("压力表指针在红区")
    shots(phone, "rounds-checkpoint")
    phone.get_by_role("button", name="提交巡检结果").click()
    phone.locator("p.notice", has_text="异常项已生成工单").wait_for()

    phone.goto(f"{console.url}/console/my")
    assert phone.locator("a.my-card", has_text="巡检不合格").count() == before + 1

    # The fire door's checklist needs a photo: refused without, taken with one.
    phone.goto(f"{console.url}/console/rounds/site-1/checkpoints/tag-door1")
    phone.get_by_label("正常").check()
    phone.get_by_label("拍照（必须）").evaluate("e => e.removeAttribute('required')")
    phone.get_by_role("button", name="提交巡检结果").click()
    phone.locator("p.notice", has_text="需要照片").wait_for()
    refused = [e for e in phone.errors if "422" in e and "/scans" in e]
    assert len(refused) == 1  # the browser logs the refusal's status; expected here
    phone.errors.remove(refused[0])
    photo = tmp_path / "door.jpg"
    photo.write_bytes(console.photo)
    phone.get_by_label("正常").check()
    phone.get_by_label("拍照（必须）").set_input_files(str(photo))
    phone.get_by_role("button", name="提交巡检结果").click()
    phone.locator("p.notice", has_text="巡检结果已保存。").wait_for()
    assert phone.url.endswith("/console/rounds?site=site-1&notice=notice.scan_saved")
    assert_clean(phone)
    phone.context.close()
