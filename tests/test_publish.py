"""Dataset card, Croissant and license-gated publishing (offline: a local stand-in for the Hub API)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from medmat_builder.cli import main
from medmat_builder.publish import LeakError, PlannedFile, audit_payload
from medmat_builder.publish import card as cards
from medmat_builder.publish import licenses, plan_publish, validate_croissant
from medmat_builder.report import BuildReport

FIXTURES = Path(__file__).parent / "fixtures"
MINI = str(FIXTURES / "mini_registry.yaml")
RESTRICTED = "toy_table"  # redistributable: false in the mini registry (subset_01 mixes it with toy_folders)
FAKE_TOKEN = "hf_FAKEtoken0123456789abcdefghijklmnopQRS"


def _parquet_rows(data: bytes) -> list[dict]:
    return pq.read_table(io.BytesIO(data), columns=["source", "image", "question"]).to_pylist()


def _materialize(plan, dest: Path) -> Path:
    for f in plan.files:
        path = dest / f.path_in_repo
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data())
    return dest


# ---------------------------------------------------------------- card


def test_medmat_build_writes_a_card_that_datasetcard_parses(tmp_path, mini_raw):
    from huggingface_hub import DatasetCard

    out = tmp_path / "export"
    assert main(["build", "--data-dir", str(mini_raw), "--out", str(out), "--registry", MINI]) == 0
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["subset_01", "subset_02"]
    # CC-BY-4.0 + CC-BY-NC-4.0 + CC0-1.0 all have Hub ids: the card lists the three (no "other").
    assert card.data.license == ["cc-by-4.0", "cc-by-nc-4.0", "cc0-1.0"]
    assert "license_name" not in card.data.to_dict()
    text = card.text
    for needle in ("### subset_01", "### subset_02", "X-ray* / *Lung* / *COVID", "Toy table", "@misc{toytable",
                   "https://example.org/toy-table", "Rebuilding restricted sources locally", "Limitations and risks",
                   "Potential Risks", "cai2024medmat", "label: [x1, y1, x2, y2]", "Look at this chest X-ray"):
        assert needle in text, needle
    assert str(tmp_path) not in (out / "README.md").read_text()
    assert (out / "croissant.json").is_file() and (out / "licenses.csv").is_file()


def test_card_is_deterministic_and_summarizes_terms(mini_registry, mini_export):
    report = BuildReport.read(mini_export)
    first = cards.render_readme(mini_registry, report, data_folder=mini_export)
    assert first == cards.render_readme(mini_registry, report, data_folder=mini_export) == (mini_export / "README.md").read_text()
    meta = yaml.safe_load(first.split("---\n")[1])
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "subset_01/train-*.parquet"}
    info = {i["config_name"]: i for i in meta["dataset_info"]}
    assert info["subset_01"]["splits"][0]["num_examples"] == report.configs["subset_01"].num_examples.train
    # subset_01 mixes CC-BY-4.0 and CC-BY-NC-4.0 (non-commercial); subset_02 is CC0 only.
    row01 = next(line for line in first.splitlines() if line.startswith("| [subset_01]"))
    row02 = next(line for line in first.splitlines() if line.startswith("| [subset_02]"))
    assert row01.endswith("| CC-BY-4.0; CC-BY-NC-4.0 | yes | no |")
    assert row02.endswith("| CC0-1.0 | no | no |")
    assert cards.card_data(mini_registry, report.only(["subset_02"])).license == "cc0-1.0"


def test_license_terms_flags():
    t = licenses.license_terms(["CC-BY-NC-SA-4.0", "CC-BY-4.0"])
    assert (t.non_commercial, t.share_alike, t.no_derivatives, t.unknown) == (True, True, False, False)
    assert licenses.license_terms(["Kaggle competition rules (non-commercial)"]).non_commercial
    assert licenses.license_terms(["CC-BY-NC-ND-4.0"]).no_derivatives
    t = licenses.license_terms(["unknown", "MIT"])
    assert t.unknown and t.non_commercial_text == "unknown"
    assert licenses.hub_license_id("ODC-By-1.0") == "odc-by" and licenses.hub_license_id("Kvasir terms") is None


def test_croissant_of_export_validates(mini_export):
    validate_croissant(mini_export / "croissant.json")
    cli = Path(sys.executable).parent / "mlcroissant"
    if cli.exists():  # the same check through the command line the issue names
        done = subprocess.run([str(cli), "validate", "--jsonld", str(mini_export / "croissant.json")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    meta = json.loads((mini_export / "croissant.json").read_text())
    assert [r["@id"] for r in meta["recordSet"]] == ["subset_01", "subset_02"]


# ---------------------------------------------------------------- payload


def test_text_only_payload_holds_no_restricted_image(tmp_path, mini_registry, mini_export):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    plan = plan_publish(mini_export, "org/medmat", mini_registry, "text-only")
    audit_payload(plan)
    names = [f.path_in_repo for f in plan.files]
    assert names[:5] == ["README.md", "licenses.csv", "croissant.json", "build_report.json", "build_report.schema.json"]
    assert sorted(n for n in names if n.endswith(".parquet")) == sorted(
        f"{c}/{p.name}" for c in ("subset_01", "subset_02") for p in (mini_export / c).glob("*.parquet"))
    assert not any(n.endswith((".png", ".jpg", ".jpeg")) for n in names)
    restricted_rows = kept_images = 0
    for f in plan.files:
        if not f.path_in_repo.endswith(".parquet"):
            continue
        rows = _parquet_rows(f.data())
        original = pq.read_table(mini_export / f.path_in_repo, columns=["source"]).num_rows
        assert len(rows) == f.rows == original  # text-only keeps every row
        for r in rows:
            if r["source"] == RESTRICTED:
                restricted_rows += 1
                assert r["image"] is None and r["question"]
            else:
                kept_images += 1
                assert r["image"]["bytes"]
    assert restricted_rows > 0 and kept_images > 0
    assert plan.publication.text_only["subset_01"] == {"sources": [RESTRICTED], "rows": restricted_rows}

    repo = _materialize(plan, tmp_path / "repo")
    card = DatasetCard.load(repo / "README.md")
    assert "text-only" in card.text and "extra_gated_prompt" in card.data.to_dict()
    assert validate_croissant(repo / "croissant.json", strict=True) == []
    # Croissant checksums the bytes uploaded (the rewritten text-only parquet files included)
    objects = {d["@id"]: d["sha256"] for d in json.loads((repo / "croissant.json").read_text())["distribution"]
               if d["@type"] == "cr:FileObject"}
    assert sorted(objects) == sorted(n for n in names if n != "croissant.json")
    assert all(objects[f.path_in_repo] == hashlib.sha256(f.data()).hexdigest() for f in plan.files if f.path_in_repo in objects)
    ds = load_dataset(str(repo), "subset_01", cache_dir=str(tmp_path / "cache"))
    test_rows = [r for r in ds["train"] if r["source"] == RESTRICTED]
    assert test_rows and all(r["image"] is None for r in test_rows)
    assert all(r["image"] is not None for r in ds["train"] if r["source"] != RESTRICTED)
    assert len(load_dataset(str(repo), "subset_02", cache_dir=str(tmp_path / "cache"))["test"]) > 0


def test_skip_leaves_restricted_configs_out(mini_registry, mini_export):
    plan = plan_publish(mini_export, "org/medmat", mini_registry, "skip")
    assert plan.configs == ["subset_02"] and plan.publication.skipped == {"subset_01": [RESTRICTED]}
    readme = plan.files[0].data().decode()
    assert "config_name: subset_01" not in readme and "`subset_01` (restricted sources: toy_table)" in readme


def test_licenses_csv_saying_false_wins_over_registry(tmp_path, mini_registry, mini_export):
    export = tmp_path / "export"
    shutil.copytree(mini_export, export)
    table = export / "licenses.csv"
    table.write_text(table.read_text().replace("toy_onehot,3,Toy one-hot,CC0-1.0,,open,true",
                                               "toy_onehot,3,Toy one-hot,CC0-1.0,,open,false"))
    plan = plan_publish(export, "org/medmat", mini_registry, "skip")
    assert plan.configs == []


def test_audit_catches_a_leak(mini_registry, mini_export):
    plan = plan_publish(mini_export, "org/medmat", mini_registry, "text-only")
    f = next(f for f in plan.files if f.path_in_repo == "subset_01/train-00000-of-00001.parquet")
    f.content = (mini_export / f.path_in_repo).read_bytes()  # the original, with restricted images
    with pytest.raises(LeakError, match="toy_table"):
        audit_payload(plan)


def test_dry_run_prints_files_and_counts(capsys, monkeypatch, mini_export):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a dry run makes no request
    assert main(["publish", str(mini_export), "--repo-id", "org/medmat", "--dry-run", "--registry", MINI]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing uploaded" in out
    for p in sorted(mini_export.glob("subset_*/*.parquet")):
        rows = pq.read_table(p, columns=["source"]).num_rows
        line = next(line for line in out.splitlines() if f"{p.parent.name}/{p.name}" in line)
        assert f"rows {rows:>6}" in line
    assert "README.md" in out and "croissant.json" in out and "images removed" in out


def test_dry_run_reads_parquet_without_pyarrow_dataset_and_exits_cleanly(tmp_path, mini_export):
    """``pq.read_table`` of a Python file object scans through pyarrow.dataset, whose I/O thread could still hold
    the file when the interpreter exited: about one ``medmat publish --dry-run`` in twelve then aborted with
    ``terminate called without an active exception`` (exit 134). Publishing reads parquet through
    ``ParquetFile`` only, in the calling thread, so pyarrow.dataset is never imported."""
    code = (
        "import sys\n"
        "from medmat_builder.cli.main import main\n"
        f"code = main(['publish', {str(mini_export)!r}, '--repo-id', 'org/medmat', '--dry-run', '--registry', {str(MINI)!r}])\n"
        "print('pyarrow.dataset' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert "terminate called" not in done.stderr


# ---------------------------------------------------------------- upload through huggingface_hub


class FakeHub:
    """The Hub API calls huggingface_hub makes for create_repo, update_repo_settings and create_commit."""

    def __init__(self, token: str):
        self.token = token
        self.calls: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.commits: list[dict] = []
        self.auth_headers: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                path = self.path.split("?")[0]
                hub.calls.append((self.command, path))
                auth = self.headers.get("Authorization", "")
                hub.auth_headers.add(auth)
                if auth != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials"})
                parts = path.strip("/").split("/")
                if (self.command, path) == ("POST", "/api/repos/create"):
                    req = json.loads(body)
                    repo_id = f"{req['organization'] or 'user'}/{req['name']}"
                    hub.repos[repo_id] = {"type": req.get("type"), "visibility": req.get("visibility")}
                    return self._reply(200, {"url": f"{base}/datasets/{repo_id}", "name": repo_id})
                if (self.command, path) == ("POST", "/api/validate-yaml"):
                    return self._reply(200, {"errors": [], "warnings": []})
                if len(parts) >= 5 and parts[:2] == ["api", "datasets"]:
                    repo_id, action = f"{parts[2]}/{parts[3]}", parts[4]
                    if repo_id not in hub.repos:
                        return self._reply(404, {"error": "Repository not found"})
                    if self.command == "PUT" and action == "settings":
                        hub.repos[repo_id].update(json.loads(body))
                        return self._reply(200, {})
                    if self.command == "POST" and action == "preupload":
                        files = json.loads(body)["files"]
                        return self._reply(200, {"files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                            for f in files]})
                    if self.command == "POST" and action == "commit":
                        lines = [json.loads(x) for x in body.splitlines() if x.strip()]
                        header = lines[0]["value"]
                        added = {}
                        for item in lines[1:]:
                            assert item["key"] == "file" and item["value"]["encoding"] == "base64"
                            added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        hub.files.update(added)
                        oid = hashlib.sha1(body).hexdigest()
                        hub.commits.append({"repo": repo_id, "summary": header["summary"], "files": sorted(added),
                                            "oid": oid})
                        return self._reply(200, {"commitUrl": f"{base}/datasets/{repo_id}/commit/{oid}",
                                                 "commitOid": oid, "pullRequestUrl": None})
                return self._reply(404, {"error": f"not implemented: {self.command} {path}"})

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = base

    def __enter__(self) -> "FakeHub":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hub_env(tmp_path, monkeypatch):
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    return hf_home


def test_upload_end_to_end_through_huggingface_hub(tmp_path, monkeypatch, capfd, caplog, hub_env,
                                                    mini_registry, mini_export):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    with FakeHub(FAKE_TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc = main(["-v", "publish", str(mini_export), "--repo-id", "org/medmat", "--private", "--registry", MINI])
        captured = capfd.readouterr()
    assert rc == 0, captured.out + captured.err
    assert hub.auth_headers == {f"Bearer {FAKE_TOKEN}"}  # the token was used, and only as a header
    assert hub.repos["org/medmat"] == {"type": "dataset", "visibility": "private", "gated": "auto"}
    assert ("POST", "/api/datasets/org/medmat/commit/main") in hub.calls
    assert len(hub.commits) == 1
    expected = {"README.md", "licenses.csv", "croissant.json", "build_report.json", "build_report.schema.json"} | {
        f"{p.parent.name}/{p.name}" for p in mini_export.glob("subset_*/*.parquet")}
    assert set(hub.commits[0]["files"]) == set(hub.files) == expected
    assert hub.commits[0]["summary"] == "medmat publish: 2 configs"
    assert f"committed {hub.commits[0]['oid']}" in captured.out

    # What arrived: no restricted image, a card that parses, configs that load, valid Croissant.
    for path, data in hub.files.items():
        if path.endswith(".parquet"):
            for r in _parquet_rows(data):
                assert r["image"] is None if r["source"] == RESTRICTED else r["image"]["bytes"]
    repo = tmp_path / "arrived"
    for path, data in hub.files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    card = DatasetCard.load(repo / "README.md")
    assert card.data.license == ["cc-by-4.0", "cc-by-nc-4.0", "cc0-1.0"] and "org/medmat" in card.text
    assert len(load_dataset(str(repo), "subset_01", cache_dir=str(tmp_path / "cache"))["train"]) > 0
    validate_croissant(repo / "croissant.json")

    # The token never shows: not in stdout/stderr, logs, or any file written here or in the export.
    assert FAKE_TOKEN not in captured.out + captured.err
    assert FAKE_TOKEN not in caplog.text
    for root in (tmp_path, mini_export):
        for f in root.rglob("*"):
            if f.is_file():
                assert FAKE_TOKEN.encode() not in f.read_bytes(), f


def test_upload_without_token_says_how_to_log_in(tmp_path, monkeypatch, capsys, hub_env, mini_export):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub(FAKE_TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["publish", str(mini_export), "--repo-id", "org/medmat", "--registry", MINI]) == 1
    assert "hf auth login" in capsys.readouterr().err and hub.calls == []


def test_rejected_token_is_not_echoed(tmp_path, monkeypatch, capfd, hub_env, mini_export):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    with FakeHub("hf_another_token_the_server_expects") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["publish", str(mini_export), "--repo-id", "org/medmat", "--registry", MINI]) == 1
    captured = capfd.readouterr()
    assert "refused" in captured.err and FAKE_TOKEN not in captured.out + captured.err
    assert not hub.files


def test_planned_file_sizes(mini_export, mini_registry):
    plan = plan_publish(mini_export, "org/medmat", mini_registry)
    assert all(isinstance(f, PlannedFile) and f.size == len(f.data()) for f in plan.files)
