"""A DATA_DIR with jobs in every state (and artifacts for the finished ones), for UI tests, the benchmark and
the screenshot in docs/. Run: python -m tests.ui.populate DATA_DIR [EXTRA_JOBS]"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from preview_desktop.core.job import Progress
from preview_desktop.core.layout import Layout
from preview_desktop.core.process import HOSTNAME
from preview_desktop.core.spec import parse_spec
from preview_desktop.queue.local import LocalStore
from tests.support.clock import Clock

FAKE_WORKER = f"{HOSTNAME}:1:beef"  # pid 1 is always alive, so the window's reaper leaves these leases alone
FARM_WORKER = "render-02:4242:a1b2"


def _frame(w: int, h: int, hue: int, text: str) -> np.ndarray:
    import cv2

    y, x = np.mgrid[0:h, 0:w]
    hsv = np.zeros((h, w, 3), np.uint8)
    hsv[..., 0] = (hue + x * 20 // w) % 180
    hsv[..., 1] = 120 + (y * 80 // h)
    hsv[..., 2] = 90 + (x * 100 // w)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    cv2.putText(img, text, (int(w * 0.06), int(h * 0.9)), cv2.FONT_HERSHEY_SIMPLEX, h / 300, (255, 255, 255),
                max(1, h // 150), cv2.LINE_AA)
    return img


def write_artifacts(folder: Path, job_id: str, project: str, warnings: list[str]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "poster.jpg"), _frame(640, 360, 100, f"{project}  00:00:12:00"))
    tw, th, cols, count = 160, 90, 5, 10
    sprite = np.zeros((th * ((count + cols - 1) // cols), tw * cols, 3), np.uint8)
    vtt = ["WEBVTT", ""]
    for i in range(count):
        r, c = divmod(i, cols)
        sprite[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = _frame(tw, th, (i * 17) % 180, f"00:00:{i * 3:02d}")
        vtt += [f"00:00:{i * 3:02d}.000 --> 00:00:{i * 3 + 3:02d}.000", f"thumbs.jpg#xywh={c * tw},{r * th},{tw},{th}",
                ""]
    cv2.imwrite(str(folder / "thumbs.jpg"), sprite)
    (folder / "thumbs.vtt").write_text("\n".join(vtt), encoding="utf-8")
    summary = {"jobId": job_id, "projectId": project, "status": "succeeded", "renderSeconds": 14.2,
               "timeline": {"source": "cut.otio", "format": "otio", "clips": 24},
               "video": {"file": "preview.mp4", "codec": "h264", "width": 640, "height": 360, "fps": 25,
                         "frames": 750, "durationSeconds": 30.0, "audio": "aac", "bytes": 2_310_000},
               "poster": "poster.jpg", "thumbnails": {"sprite": "thumbs.jpg", "vtt": "thumbs.vtt", "count": count},
               "warnings": warnings}
    (folder / "preview.json").write_text(json.dumps(summary), encoding="utf-8")


def _log(data_dir: Path, job_id: str, messages: list[tuple[str, str]]) -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "preview-desktop.log").open("a", encoding="utf-8") as fh:
        for level, message in messages:
            fh.write(json.dumps({"time": "2026-11-28T12:00:00.000Z", "level": level, "logger": "engine",
                                 "message": message, "job_id": job_id}) + "\n")


def populate(data_dir: Path, extra: int = 0, queue_max: int = 100_000) -> dict[str, str]:
    """Jobs in every state; returns state name -> one job id. `extra` adds that many finished jobs (bench)."""
    clock = Clock(time.time() - 3 * 3600)
    store = LocalStore(Layout(data_dir).data_dir / "queue", queue_max=queue_max, clock=clock, retry_base=900)
    layout = Layout(data_dir)
    media = "/Volumes/Edit/projects"
    ids: dict[str, str] = {}

    def submit(project: str, timeline: str, priority: int = 5, **kw: object) -> str:
        clock.now += 37
        spec = parse_spec({"projectId": project, "timeline": f"{media}/{project}/{timeline}", "priority": priority,
                           **kw})
        return store.submit(spec).id

    def lease(worker: str = FAKE_WORKER) -> tuple[str, str]:
        clock.now += 5
        got = store.lease(worker, 10 * 365 * 86400)
        assert got is not None
        return got.job.id, got.token

    for i in range(extra):  # old history first, so the showcase jobs are the newest
        submit(f"archive_{i % 40:02d}", f"reel_{i}.otio", supersede=False)
        leased, token = lease()
        clock.now += 10 + i % 50
        if i % 9 == 0:
            store.fail(leased, token, "MediaError: clip 'B-roll' is offline", None, retryable=False)
        else:
            store.complete(leased, token, {"ok": True})

    showcase = (("promo_2026", "promo_v3.otio", "ok"), ("feature_trailer", "trailer_v12.edl", "ok"),
                ("doc_ep04", "ep04_assembly.fcpxml", "fail"))
    for project, timeline, outcome in showcase:
        submit(project, timeline)
        leased, token = lease()
        clock.now += 120 + len(project) * 7
        if outcome == "ok":
            store.complete(leased, token, {"ok": True})
            write_artifacts(layout.preview_dir(project, leased), leased, project,
                            ["clip 'B-roll 3': media offline, slate rendered"] if project == "promo_2026" else [])
            _log(data_dir, leased, [("info", f"job {leased} started ({project}, attempt 1/3)"),
                                    ("info", "timeline: 24 clips, 30.0 s at 25 fps"),
                                    ("warning", "clip 'B-roll 3': media offline, slate rendered"),
                                    ("info", f"job {leased}: attempt ended after 14.2s, now succeeded")])
            ids.setdefault("succeeded", leased)
        else:
            try:
                raise RuntimeError("FCPXML: asset r12 refers to a missing format")
            except RuntimeError as exc:
                tb = "".join(traceback.format_exception(exc))
            store.fail(leased, token, "InvalidInput: FCPXML: asset r12 refers to a missing format", tb,
                       retryable=False)
            _log(data_dir, leased, [("info", f"job {leased} started"),
                                    ("error", "FCPXML: asset r12 refers to a missing format")])
            ids["failed"] = leased
    clock.now = time.time() - 900
    ids["superseded"] = submit("music_video", "mv_cut_v2.otio")
    ids["cancelled"] = submit("spot_30s", "spot_30s_alt.edl")
    store.cancel(ids["cancelled"])
    clock.now = time.time() - 400
    submit("music_video", "mv_cut_v2.otio", priority=7)  # supersedes the older one; leased below
    leased, token = lease()
    ids["running"] = leased
    store.heartbeat({leased: token}, 10 * 365 * 86400, {leased: Progress(0.62, 465, 750, 31.5)})
    submit("feature_trailer", "trailer_v13.edl", priority=6)
    leased2, token2 = lease(FARM_WORKER)
    store.heartbeat({leased2: token2}, 10 * 365 * 86400, {leased2: Progress(0.18, 140, 780, 24.0)})
    ids["retrying"] = submit("promo_2026", "promo_social_9x16.otio", priority=8)
    leased3, token3 = lease()
    store.fail(leased3, token3, "RenderError: encoder stalled (disk busy)", None, retryable=True)
    clock.now = time.time() - 60
    ids["queued"] = submit("doc_ep05", "ep05_rough.otio")
    submit("doc_ep06", "ep06_rough.otio", priority=3)
    submit("brand_film", "brand_film_v1.xml", priority=5)
    store.close()
    return ids


if __name__ == "__main__":
    target = Path(sys.argv[1])
    print(populate(target, int(sys.argv[2]) if len(sys.argv) > 2 else 0))
