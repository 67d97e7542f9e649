"""Download and unpack the official CIFAR archives, safely.

The archive is streamed to a temporary file beside its final name, checked against its
MD5 and only then renamed, so an interrupted or corrupt download never looks complete.
It is unpacked into a temporary folder, after every member has been checked to be a plain
file or folder that stays inside it, and the data folder is renamed into place last.
"""
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zlib

from tqdm import tqdm

from common.files import atomic_path

from .cifar import layout

CHUNK = 1 << 20


def download_cifar(dataset, root, url=None, md5=None, progress=True):
    """Fetch and unpack CIFAR ``dataset`` ('cifar10'/'cifar100') into ``root``; return its folder.

    Nothing is fetched when the folder already holds every file. ``url`` and ``md5`` default
    to the official archive on https://www.cs.toronto.edu/~kriz/ and its checksum. An archive
    already in ``root`` with the right checksum is unpacked without downloading it again.
    """
    spec = layout(dataset)
    folder = os.path.join(root, spec.folder)
    needed = spec.train + spec.test + [spec.meta]
    if os.path.isdir(folder):
        missing = [f for f in needed if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(f"{os.path.join(folder, missing[0])}: no such file; the "
                                    f"folder is incomplete, remove it to download "
                                    f"{spec.name} again")
        return folder
    url = url or spec.url
    md5 = md5 or spec.md5
    os.makedirs(root, exist_ok=True)
    archive = os.path.join(root, os.path.basename(urllib.parse.urlparse(url).path)
                           or spec.folder + ".tar.gz")
    if not (os.path.isfile(archive) and file_md5(archive) == md5):
        try:
            fetch(url, archive, md5, progress)
        except OSError as err:
            raise OSError(f"{err}; to unpack a copy of the archive at hand instead: python3 -m "
                          f"data download {dataset} {root} --url file:///ABSOLUTE/PATH/"
                          f"{os.path.basename(archive)} [--md5 ITS_MD5]") from None
    extract(archive, root, spec.folder)
    return folder


def file_md5(path):
    """Hex MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url, dest, md5, progress=True):
    """Download ``url`` to ``dest`` if its MD5 is ``md5``; no partial file is ever left."""
    try:
        with atomic_path(dest) as tmp:
            digest, received = hashlib.md5(), 0
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest),
                          disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total and received != total:
                    raise OSError(f"connection closed after {received} of {total} bytes")
            if digest.hexdigest() != md5:
                raise ValueError(f"{url}: MD5 {digest.hexdigest()} does not match the "
                                 f"expected {md5}; the download was discarded")
    except (OSError, http.client.HTTPException) as err:
        raise OSError(f"download of {url} failed: {err}") from None


def extract(archive, root, folder):
    """Unpack ``folder`` from the tar ``archive`` into ``root``, refusing unsafe members."""
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"{archive}: not a readable tar archive ({err})") from None
    tmp = tempfile.mkdtemp(dir=root, prefix=".extract-")
    with tar:
        try:
            members = tar.getmembers()
            for member in members:
                check_member(archive, member, tmp)
            options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **options)
            if not os.path.isdir(os.path.join(tmp, folder)):
                raise ValueError(f"{archive}: has no {folder}/ folder")
            os.replace(os.path.join(tmp, folder), os.path.join(root, folder))
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise ValueError(f"{archive}: corrupt archive ({err})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def check_member(archive, member, root):
    """Raise ValueError unless ``member`` is a plain file or folder that stays in ``root``."""
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: member {member.name!r} is a link or special file; refused")
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, member.name))
    if os.path.isabs(member.name) or os.path.commonpath([base, target]) != base:
        raise ValueError(f"{archive}: member {member.name!r} would be written outside "
                         "the target folder; refused")
