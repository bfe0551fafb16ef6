"""The web UI in a real browser (Chromium driven by Playwright) against the real server and the embedded model:
the key flow, a streamed answer that visibly grows, Stop freeing the server's slot, a personality choice
reaching the server, model output that tries to run script staying inert, and the status page. Screenshots at
desktop and phone widths go to tests/webui/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lollms_server.api import webui
from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, wait_until, write_instance
from tests.server import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).parent / "screenshots"
XSS = '<img src=x onerror="window.pwned=1"> [click](javascript:window.pwned=2) **bold**'
XSS_WORKFLOW = f"""
async def run_workflow(prompt, params, context):
    return {XSS!r}
"""


def _missing() -> str | None:
    if CHROMIUM is None:
        return "no Chromium (apt-get install chromium; ./run_tests.sh installs it when run as root)"
    if webui.built_ui(webui.CHECKOUT_DIST) is None:
        return "the web UI is not built (./run_tests.sh builds it: cd webui && npm ci && npm run build)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra)"
    return None


if (reason := _missing()) is not None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"the browser tests must run under CI=true: {reason}")
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    config = make_config(
        tmp_path,
        bindings_map={"llama": "llamacpp_binding", "ghost": "no_such_binding"},  # ghost: broken on purpose
        defaults={"ttt_binding": "llama"},
        webui={"enable_ui": True},
    )
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2})
    scripts = config.paths.personalities_folder / "inert_check" / "scripts"
    scripts.mkdir(parents=True)
    (scripts.parent / "config.yaml").write_text(
        "name: inert_check\ncategory: tests\nauthor: tests\nversion: 1.0.0\npersonality_conditioning: Test.\n"
    )
    (scripts / "workflow.py").write_text(XSS_WORKFLOW)
    app = create_app(config)
    async with serving(app) as url:
        yield url, app


@pytest.fixture
async def page(server: tuple[str, Any]) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        tab = await context.new_page()
        await tab.goto(server[0] + "/")
        yield tab
        await browser.close()


async def sign_in(page: Any) -> None:
    await page.fill("#key", TEST_API_KEY)
    await page.click("button[type=submit]")
    await page.wait_for_selector("textarea")


async def test_the_key_flow_and_a_streamed_answer(page: Any) -> None:
    await page.wait_for_selector("#key")
    await page.fill("#key", "not-the-key")
    await page.click("button[type=submit]")
    assert "not accepted" in (await page.text_content("[role=alert]") or "")
    await sign_in(page)
    await page.fill("textarea", "Tell me about the city of Paris in France.")
    await page.press("textarea", "Enter")
    lengths: set[int] = set()
    while await page.query_selector("li.assistant .meta") is None:  # until the answer is complete
        lengths.add(len(await page.text_content("li.assistant .text") or ""))
        await page.wait_for_timeout(20)
    final = await page.text_content("li.assistant .text") or ""
    assert final and len({length for length in lengths if 0 < length < len(final)}) >= 1  # it grew in view
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "chat-desktop.png"))
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.screenshot(path=str(SCREENSHOTS / "chat-phone.png"))


async def test_stop_frees_the_servers_slot(page: Any, server: tuple[str, Any]) -> None:
    await sign_in(page)
    await page.fill("textarea", "Write a very long story about a dragon and a knight, with many chapters.")
    await page.press("textarea", "Enter")
    while not (await page.text_content("li.assistant .text") or ""):  # the answer has begun
        await page.wait_for_timeout(20)
    await page.click("button.stop")
    await page.wait_for_selector("li.assistant .meta")
    app = server[1]
    await wait_until(lambda: app.state.resource_manager.stats().active == 0)
    tokens = int((await page.text_content("li.assistant .meta") or "0").split()[0].replace("?", "0") or 0)
    assert tokens < 1024  # stopped, not run to the default max_tokens


async def test_a_chosen_personality_answers_and_its_markup_stays_inert(page: Any) -> None:
    await sign_in(page)
    await page.fill("#filter", "inert")
    await page.select_option("select", "inert_check")
    await page.fill("textarea", "hello")
    await page.press("textarea", "Enter")
    await page.wait_for_selector("li.assistant .meta")
    assert await page.evaluate("window.pwned") is None
    assert await page.query_selector("li.assistant img[onerror]") is None
    assert await page.query_selector("li.assistant a[href^='javascript']") is None
    assert await page.inner_text("li.assistant strong") == "bold"


async def test_the_status_page_lists_a_broken_binding_with_its_reason(page: Any) -> None:
    await sign_in(page)
    await page.click("nav >> text=Status")
    row = page.locator("tr", has_text="ghost")
    await row.wait_for()
    assert "no_such_binding" in (await row.inner_text())
    assert "active" in (await page.locator("p.queue").inner_text())


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("ui-diffusion") / "tiny-sd")


@pytest.fixture
async def media_page(tmp_path: Path, tiny_sd: Path) -> AsyncIterator[Any]:
    """The UI on a server that draws (the tiny diffusers pipeline) and speaks (hibari)."""
    pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
    from playwright.async_api import async_playwright

    config = make_config(
        tmp_path,
        bindings_map={"sd": "diffusers_binding", "voice": "hibari_binding"},
        defaults={"tti_binding": "sd", "tts_binding": "voice"},
        webui={"enable_ui": True},
    )
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(tiny_sd, target_is_directory=True)
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1})
    write_instance(config, "voice", {"type": "hibari_binding"})
    async with serving(create_app(config)) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = await browser.new_page()
        await tab.goto(url + "/")
        yield tab
        await browser.close()


async def test_an_image_is_shown_and_speech_can_be_played(media_page: Any) -> None:
    page = media_page
    await sign_in(page)
    await page.select_option("#task", "tti")
    await page.fill("textarea", "a red fox")
    await page.press("textarea", "Enter")
    image = page.locator("li.assistant img")
    await image.wait_for()
    assert await image.evaluate("element => element.decode().then(() => element.naturalWidth)") == 64
    await page.select_option("#task", "tts")
    await page.fill("textarea", "Hello from the web UI.")
    await page.press("textarea", "Enter")
    audio = page.locator("li.assistant audio")
    await audio.wait_for()
    seconds = await audio.evaluate(
        "element => new Promise(done => element.readyState >= 1 ? done(element.duration)"
        " : element.addEventListener('loadedmetadata', () => done(element.duration)))"
    )
    assert 0.5 < seconds < 5
