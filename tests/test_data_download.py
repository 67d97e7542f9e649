"""download_cifar against a local HTTP server on 127.0.0.1 serving archives built here."""
import hashlib
import http.server
import io
import os
import tarfile
import threading

import numpy as np
import pytest

import data

ARCHIVE = "cifar-10-python.tar.gz"


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if self.path == "/short":  # promises 100 kB, sends 10 bytes, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", www, requests
    httpd.shutdown()
    httpd.server_close()


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture
def archive(server, tmp_path):
    """A small official-layout CIFAR-10 archive on the server; (url, md5, source folder)."""
    base, www, _ = server
    folder = data.make_synthetic_cifar(str(tmp_path / "build"), train_per_batch=20, test_size=20)
    with tarfile.open(www / ARCHIVE, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return f"{base}/{ARCHIVE}", md5(www / ARCHIVE), folder


def leftovers(root):
    return sorted(name for name in os.listdir(root) if name.startswith("."))


def test_download_verify_extract_then_skip(archive, server, tmp_path, capfd):
    url, checksum, source = archive
    root = tmp_path / "data"
    folder = data.download_cifar("cifar10", str(root), url=url, md5=checksum)
    assert folder == str(root / "cifar-10-batches-py")
    assert ARCHIVE in capfd.readouterr().err  # the progress bar
    for train in (True, False):
        got, want = data.load_cifar(folder, train), data.load_cifar(source, train)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert md5(root / ARCHIVE) == checksum and leftovers(root) == []
    requests = server[2]
    assert requests == [f"/{ARCHIVE}"]
    assert data.download_cifar("cifar10", str(root), url=url, md5=checksum) == folder
    assert len(requests) == 1  # already there: nothing fetched


def test_archive_already_present_is_not_fetched_again(archive, server, tmp_path):
    url, checksum, _ = archive
    root = tmp_path / "data"
    root.mkdir()
    (root / ARCHIVE).write_bytes((server[1] / ARCHIVE).read_bytes())
    folder = data.download_cifar("cifar10", str(root), url=url, md5=checksum, progress=False)
    assert len(data.load_cifar(folder)[1]) == 100 and server[2] == []


def test_checksum_mismatch_leaves_nothing(archive, tmp_path):
    url, checksum, _ = archive
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=f"MD5 {checksum} does not match the expected 0+; "
                                         "the download was discarded"):
        data.download_cifar("cifar10", str(root), url=url, md5="0" * 32, progress=False)
    assert os.listdir(root) == []


@pytest.mark.parametrize("path, message", [
    ("/missing.tar.gz", "failed: HTTP Error 404"),
    ("/short", "failed: connection closed after 10 of 100000 bytes")])
def test_failed_download_leaves_nothing(server, tmp_path, path, message):
    root = tmp_path / "data"
    with pytest.raises(OSError, match=f"download of {server[0]}{path} {message}") as failed:
        data.download_cifar("cifar10", str(root), url=server[0] + path, progress=False)
    assert os.listdir(root) == []
    # a user without internet learns how to use a copy of the archive at hand
    assert str(failed.value).endswith(
        f"; to unpack a copy of the archive at hand instead: python3 -m data download cifar10 "
        f"{root} --url file:///ABSOLUTE/PATH/{os.path.basename(path)} [--md5 ITS_MD5]")


def evil_archive(path, kind):
    """A tar.gz with a legitimate-looking folder and one hostile member."""
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        payload = b"owned"
        if kind == "symlink":
            member = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member)
            return
        name = {"parent": "cifar-10-batches-py/../../evil.txt",
                "absolute": os.path.join(os.path.dirname(path), "evil.txt")}[kind]
        member = tarfile.TarInfo(name)
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))


@pytest.mark.parametrize("kind, message", [
    ("parent", "would be written outside the target folder"),
    ("absolute", "would be written outside the target folder"),
    ("symlink", "is a link or special file")])
def test_traversal_archive_is_refused(server, tmp_path, kind, message):
    base, www, _ = server
    evil_archive(str(www / ARCHIVE), kind)
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=f"{ARCHIVE}: member .* {message}; refused"):
        data.download_cifar("cifar10", str(root), url=f"{base}/{ARCHIVE}",
                            md5=md5(www / ARCHIVE), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (www / "evil.txt").exists()
    assert sorted(os.listdir(root)) == [ARCHIVE]  # verified archive kept, nothing extracted


def test_incomplete_existing_folder(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="folder is incomplete"):
        data.download_cifar("cifar10", str(tmp_path))


def test_command_line(archive, tmp_path, capsys):
    from common.cli import run_main
    from data.__main__ import main
    url, checksum, _ = archive
    run_main(main, ["download", "cifar10", str(tmp_path / "cli"), "--url", url, "--md5", checksum])
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli" / "cifar-10-batches-py")
    with pytest.raises(SystemExit) as code:
        run_main(main, ["download", "cifar10", str(tmp_path / "bad"), "--url", url,
                        "--md5", "f" * 32])
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert code.value.code == 2 and "error: http" in last and "does not match" in last
