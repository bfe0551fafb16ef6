"""The web UI as a person meets it (issue 14's figures): the bundle size, the first paint and the key screen,
and the time from Enter to the first streamed token in the browser, in Chromium (Playwright) against the real
server and the embedded model.

    venv/bin/python bench/bench_webui.py        # --runs 5; needs the built UI and /usr/bin/chromium

The first answer loads the model and is reported apart; the others are the steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lollms_server.api import webui  # noqa: E402
from lollms_server.app import create_app  # noqa: E402
from tests.helpers import TEST_API_KEY, make_config, write_instance  # noqa: E402
from tests.server import serving  # noqa: E402

# Clicks Send and resolves with the milliseconds until the new answer shows its first text.
FIRST_TOKEN = """() => new Promise(resolve => {
  const list = document.querySelector("ol.messages");
  const before = list.querySelectorAll("li.assistant").length;
  const start = performance.now();
  const observer = new MutationObserver(() => {
    const answers = list.querySelectorAll("li.assistant");
    if (answers.length > before && answers[answers.length - 1].querySelector(".text").textContent.trim()) {
      observer.disconnect();
      resolve(performance.now() - start);
    }
  });
  observer.observe(list, { subtree: true, childList: true, characterData: true });
  document.querySelector("form.composer button[type=submit]").click();
})"""


def bundle_sizes(dist: Path) -> tuple[int, int]:
    files = [path for path in (dist / "assets").iterdir() if path.suffix in (".js", ".css")]
    return sum(path.stat().st_size for path in files), sum(len(gzip.compress(path.read_bytes())) for path in files)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.async_api import async_playwright

    dist = webui.built_ui(webui.CHECKOUT_DIST)
    chromium = shutil.which("chromium")
    if dist is None or chromium is None:
        sys.exit("needs the built UI (python install_core.py --webui) and Chromium (apt-get install chromium)")
    raw, zipped = bundle_sizes(dist)
    print(f"bundle: {raw / 1024:.0f} KB of JS and CSS, {zipped / 1024:.0f} KB gzipped")

    config = make_config(
        Path(tempfile.mkdtemp()),
        bindings_map={"llama": "llamacpp_binding"},
        defaults={"ttt_binding": "llama"},
        webui={"enable_ui": True},
    )
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2})
    async with serving(create_app(config)) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        paints, screens = [], []
        for _ in range(args.runs):
            page = await (await browser.new_context()).new_page()
            started = time.perf_counter()
            await page.goto(url + "/")
            await page.wait_for_selector("#key")
            screens.append(time.perf_counter() - started)
            paint = await page.evaluate(
                "performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint')?.startTime"
            )
            paints.append(paint / 1000)
            await page.context.close()
        print(f"first contentful paint: median {statistics.median(paints) * 1000:.0f} ms")
        print(f"key screen after navigation: median {statistics.median(screens) * 1000:.0f} ms")

        page = await browser.new_page()
        await page.goto(url + "/")
        await page.fill("#key", TEST_API_KEY)
        await page.click("button[type=submit]")
        await page.wait_for_selector("textarea")
        await page.click("summary >> text=Parameters of Text")
        await page.fill("input[name=max_tokens]", "16")  # short answers: the first token is what is measured
        latencies = []
        for run in range(args.runs + 1):
            await page.fill("textarea", f"Say something about the number {run}.")
            latencies.append(await page.evaluate(FIRST_TOKEN))
            while await page.locator("li.assistant .timing").count() <= run:  # the answer is complete
                await page.wait_for_timeout(20)
        print(f"first streamed token: {latencies[0]:.0f} ms on the first answer (model load), ", end="")
        print(f"then median {statistics.median(latencies[1:]):.0f} ms over {args.runs}")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
