"""The web UI in a real browser (Chromium driven by Playwright) against the real server and real models: the key
flow, a streamed answer that visibly grows, Stop freeing the server's slot, a personality choice reaching the
server, model output that tries to run script staying inert, code blocks copied, conversations renamed and kept
across a reload, the status page; images made with parameters from the server's own description and edited
again ("use as input"), speech played, transcriptions of an uploaded file and of the (fake) microphone, and a
video and music from the model and parameters chosen in the UI.
Screenshots at desktop and phone widths go to tests/webui/screenshots/."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.api import webui
from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, wait_until, write_instance
from tests.server import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).parent / "screenshots"
XSS = '<img src=x onerror="window.pwned=1"> [click](javascript:window.pwned=2) **bold**\n\n```python\nprint(1)\n```'
FOX = "The quick brown fox jumps over the lazy dog."
# Playwright gives each action and wait 30 s; here the page waits for real models on a machine that may be
# loaded (a 1024-token answer took 17 s idle, 231 s and 564 s with two busy loops on two cores): every wait
# is for a state of the page, allowed this long.
WAIT_MS = 900_000
# Chromium's fake microphone (a tone), granted without a prompt.
CHROMIUM_ARGS = ["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
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
    async with browser_on(server[0]) as tab:
        yield tab


@contextlib.asynccontextmanager
async def browser_on(url: str) -> AsyncIterator[Any]:
    """A Chromium tab (desktop size, clipboard allowed, the fake microphone) on the UI at ``url``."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        context.set_default_timeout(WAIT_MS)
        await context.grant_permissions(["clipboard-read", "clipboard-write"])
        tab = await context.new_page()
        await tab.goto(url + "/")
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
    # Every length the answer's text takes in the page, recorded by the page itself at each change (polling it
    # from here could miss them all on a loaded machine).
    await page.evaluate(
        """() => {
            window.answerLengths = [];
            new MutationObserver(() => {
                const text = document.querySelector("li.assistant .text");
                if (text) window.answerLengths.push(text.textContent.length);
            }).observe(document.body, {childList: true, subtree: true, characterData: true});
        }"""
    )
    # A short answer is enough to see it grow (a long one only makes a loaded machine slower to finish it).
    await page.click("summary >> text=Parameters of Text")
    await page.fill("input[name=max_tokens]", "64")
    await page.fill("textarea", "Tell me about the city of Paris in France.")
    await page.press("textarea", "Enter")
    await page.wait_for_selector("li.assistant .timing")  # the answer is complete
    final = await page.text_content("li.assistant .text") or ""
    lengths = await page.evaluate("window.answerLengths")
    assert final and len({length for length in lengths if 0 < length < len(final)}) >= 1  # it grew in view
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "chat-desktop.png"))
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.screenshot(path=str(SCREENSHOTS / "chat-phone.png"))
    # At phone width the conversations are a panel opened on demand.
    assert not await page.is_visible("aside.sidebar")
    await page.click("button.sidebar-toggle")
    await page.locator("aside.sidebar button.title", has_text="Tell me about").wait_for()


async def test_stop_frees_the_servers_slot(page: Any, server: tuple[str, Any]) -> None:
    await sign_in(page)
    await page.fill("textarea", "Write a very long story about a dragon and a knight, with many chapters.")
    await page.press("textarea", "Enter")
    await page.wait_for_function("() => document.querySelector('li.assistant .text')?.textContent")  # begun
    await page.click("button.stop")
    await page.wait_for_selector("li.assistant .timing")
    app = server[1]
    await wait_until(lambda: app.state.resource_manager.stats().active == 0)
    counted = re.search(r"(\d+) tokens", await page.text_content("li.assistant .timing") or "")
    assert counted is None or int(counted[1]) < 1024  # stopped (no usage: before the end), not run to max_tokens


async def test_a_chosen_personality_answers_and_its_markup_stays_inert(page: Any) -> None:
    await sign_in(page)
    await page.fill("#filter", "inert")
    await page.select_option("select[aria-label=Personality]", "inert_check")
    await page.fill("textarea", "hello")
    await page.press("textarea", "Enter")
    await page.wait_for_selector("li.assistant .timing")
    assert await page.evaluate("window.pwned") is None
    assert await page.query_selector("li.assistant img[onerror]") is None
    assert await page.query_selector("li.assistant a[href^='javascript']") is None
    assert await page.inner_text("li.assistant strong") == "bold"
    # The code block is highlighted and its copy button copies it.
    assert await page.inner_text("li.assistant .code .hljs-built_in") == "print"
    await page.click("li.assistant button.copy")
    await page.locator("li.assistant button.copy", has_text="Copied").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == "print(1)\n"
    # Renamed, the conversation keeps its name, its answer and its personality across a reload.
    await page.click("aside button[aria-label^=Rename]")
    await page.fill("aside input", "Inert checks")
    await page.press("aside input", "Enter")
    await page.reload()
    await page.wait_for_selector("textarea")
    await page.click("aside button.title >> text=Inert checks")
    assert await page.inner_text("li.assistant strong") == "bold"
    assert await page.input_value("select[aria-label=Personality]") == "inert_check"


async def test_the_status_page_lists_a_broken_binding_with_its_reason(page: Any) -> None:
    await sign_in(page)
    await page.click("nav >> text=Status")
    row = page.locator("tr", has_text="ghost")
    await row.wait_for()
    assert "no_such_binding" in (await row.inner_text())
    assert "active" in (await page.locator("p.queue").inner_text())
    await page.locator("dl.folder dt").first.wait_for()  # the models folder, by kind


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("ui-diffusion") / "tiny-sd")


@pytest.fixture
async def media_server(tmp_path: Path, tiny_sd: Path) -> AsyncIterator[str]:
    """A server that draws (the tiny diffusers pipeline), speaks (hibari) and listens (whisper tiny.en)."""
    pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
    config = make_config(
        tmp_path,
        bindings_map={"sd": "diffusers_binding", "voice": "hibari_binding", "ears": "whisper_binding"},
        defaults={"tti_binding": "sd", "i2i_binding": "sd", "tts_binding": "voice", "stt_binding": "ears"},
        webui={"enable_ui": True},
    )
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(tiny_sd, target_is_directory=True)
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1})
    write_instance(config, "voice", {"type": "hibari_binding"})
    write_instance(config, "ears", {"type": "whisper_binding"})
    async with serving(create_app(config)) as url:
        yield url


@pytest.fixture
async def media_page(media_server: str) -> AsyncIterator[Any]:
    async with browser_on(media_server) as tab:
        yield tab


async def natural_width(image: Any) -> int:
    return int(await image.evaluate("element => element.decode().then(() => element.naturalWidth)"))


async def test_images_with_the_servers_parameters_and_used_as_input_again(media_page: Any) -> None:
    page = media_page
    await sign_in(page)
    await page.select_option("#task", "tti")
    # The parameter form comes from the server's schema: its limits are the server's.
    await page.click("summary >> text=Parameters of Image")
    assert await page.get_attribute("input[name=width]", "max") == "8192"
    assert await page.get_attribute("input[name=width]", "step") == "8"
    await page.fill("input[name=width]", "128")
    await page.fill("input[name=height]", "96")
    await page.fill("textarea", "a red fox")
    await page.press("textarea", "Enter")
    image = page.locator("li.assistant img").first
    await image.wait_for()
    assert await natural_width(image) == 128
    # "Use as input": image to image from the picture just made.
    await page.click("li.assistant >> text=Use as input")
    assert await page.input_value("#task") == "i2i"
    await page.locator(".inputs img.thumb").wait_for()
    await page.fill("textarea", "the same fox, in blue")
    await page.press("textarea", "Enter")
    edited = page.locator("li.assistant img").nth(1)
    await edited.wait_for()
    assert await natural_width(edited) == 128  # the input's size
    assert await page.locator("li.user img").count() == 1  # the input, shown in the user's turn
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "images-desktop.png"))


async def test_speech_is_played_and_transcribed_from_a_file_and_the_microphone(
    media_page: Any, media_server: str, tmp_path: Path
) -> None:
    page = media_page
    await sign_in(page)
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
    # A transcription of an uploaded file (speech the server made, saved as a WAV file).
    async with httpx.AsyncClient(base_url=media_server, timeout=120) as client:
        spoken = await client.post(
            "/api/v1/generate",
            headers={"X-API-Key": TEST_API_KEY},
            json={"generation_type": "tts", "input_data": [{"type": "text", "role": "user_prompt", "data": FOX}]},
        )
    wav = tmp_path / "fox.wav"
    wav.write_bytes(base64.b64decode(spoken.json()["output"][0]["data"]))
    await page.select_option("#task", "stt")
    await page.set_input_files("#file-input_audio", str(wav))
    await page.locator(".inputs audio.thumb").wait_for()
    await page.click("button[type=submit]")
    answer = page.locator("li.assistant").nth(1)
    await answer.locator(".timing").wait_for()
    assert "quick brown fox" in (await answer.locator(".text").inner_text()).lower()
    # The microphone (Chromium's fake one): recorded, sent, transcribed without an error.
    await page.click("text=Record")
    await page.locator("button", has_text="Stop recording").wait_for()
    await page.wait_for_timeout(1000)  # a second of sound: the length of the recording, not a synchronization
    await page.click("text=Stop recording")
    await page.locator(".inputs audio.thumb").wait_for()
    await page.click("button[type=submit]")
    answer = page.locator("li.assistant").nth(2)
    await answer.locator(".timing").wait_for()
    assert await answer.locator(".error").count() == 0
    assert await page.locator("li.user").nth(2).locator("audio").count() == 1


@pytest.fixture
async def motion_page(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """The UI on a server that makes videos (the tiny text-to-video pipeline) and music (a tiny MusicGen)."""
    from tests.zoo.tiny_diffusion import build_tiny_video_pipeline
    from tests.zoo.tiny_musicgen import build_tiny_musicgen

    pytest.importorskip("imageio_ffmpeg", reason="install with ./run_tests.sh (the diffusers extra)")
    built = tmp_path_factory.mktemp("ui-motion")
    config = make_config(
        tmp_path,
        bindings_map={"clips": "diffusers_binding", "music": "musicgen_binding"},
        defaults={"ttv_binding": "clips", "ttm_binding": "music"},
        webui={"enable_ui": True},
    )
    videos = config.paths.models_folder / "diffusers_models"
    videos.mkdir(parents=True)
    build_tiny_video_pipeline(videos / "tiny-video")
    build_tiny_musicgen(built / "tiny-musicgen")
    (config.paths.models_folder / "musicgen").mkdir()
    (config.paths.models_folder / "musicgen" / "tiny-musicgen").symlink_to(built / "tiny-musicgen")
    write_instance(config, "clips", {"type": "diffusers_binding", "num_threads": 1, "max_frames": 8})
    write_instance(config, "music", {"type": "musicgen_binding", "default_model": "tiny-musicgen"})
    async with serving(create_app(config)) as url, browser_on(url) as tab:
        yield tab


async def media_duration(element: Any) -> float:
    return float(
        await element.evaluate(
            "element => new Promise(done => element.readyState >= 1 ? done(element.duration)"
            " : element.addEventListener('loadedmetadata', () => done(element.duration)))"
        )
    )


async def test_a_video_and_music_from_the_chosen_model_with_the_forms_choices(motion_page: Any) -> None:
    page = motion_page
    await sign_in(page)
    await page.select_option("#task", "ttv")
    # The instance has no default model: pick it among the instance's models, as listed by the server.
    await page.locator("#model option[value=tiny-video]").wait_for(state="attached")
    await page.select_option("#model", "tiny-video")
    await page.click("summary >> text=Parameters of Video")
    await page.fill("input[name=num_inference_steps]", "2")
    await page.fill("input[name=num_frames]", "4")
    await page.fill("input[name=fps]", "4")
    await page.select_option("select[name=video_format]", "webm")
    await page.fill("textarea", "a cat walking")
    await page.press("textarea", "Enter")
    video = page.locator("li.assistant video")
    await video.wait_for()
    assert await media_duration(video) == pytest.approx(1.0, abs=0.15)  # 4 frames at 4 fps
    assert await page.get_attribute("li.assistant a[download]", "download") == "video.webm"
    await page.select_option("#task", "ttm")
    await page.locator("summary", has_text="Parameters of Music").wait_for()  # the panel stays open
    await page.fill("input[name=duration]", "1.5")
    await page.fill("textarea", "a calm piano tune")
    await page.press("textarea", "Enter")
    music = page.locator("li.assistant audio")
    await music.wait_for()
    assert await media_duration(music) == pytest.approx(1.5, abs=0.05)
