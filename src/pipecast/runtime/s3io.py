"""Artifacts on S3 (and ``file://``/plain local paths) for the ``s3`` and ``sagemaker`` conventions.

Layout: a file artifact is one object ``<prefix>/<name>`` (its URI has no trailing slash); a
folder artifact is the objects under ``<prefix>/<name>/`` (its URI ends with ``/``). A URI
without a trailing slash that names no object is read as a folder too, so prefixes written by
other tools (a SageMaker ProcessingOutput) work; a folder holding a
:data:`~pipecast.runtime.conventions.base.MARKER` stands for the one file it names.

boto3 is imported lazily and honours ``AWS_ENDPOINT_URL``, the region and credentials.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipecast.runtime.conventions.base import ConventionError, locate_in_folder


@cache
def client() -> Any:
    from pipecast.runtime import aws

    return aws.client("s3")


def split(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``("bucket", "key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConventionError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def download(uri: str, dest: Path) -> Path:
    """Fetch the artifact at ``uri`` into the empty folder ``dest``; return its local path.

    ``file://`` URIs and plain local paths are used in place (nothing is copied).
    """
    if uri.startswith("file://"):
        return _existing(Path(unquote(urlparse(uri).path)), uri)
    if not uri.startswith("s3://"):
        return _existing(Path(uri), uri)
    bucket, key = split(uri)
    s3 = client()
    dest.mkdir(parents=True, exist_ok=True)
    if key and not key.endswith("/"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _status(exc) not in (403, 404):
                raise ConventionError(f"cannot read {uri}: {exc}") from None
        else:
            target = dest / key.rsplit("/", 1)[-1]
            s3.download_file(bucket, key, str(target))
            return target
    prefix = key if key.endswith("/") or not key else key + "/"
    folder = dest / (prefix.rstrip("/").rsplit("/", 1)[-1] or "artifact")
    folder.mkdir(parents=True, exist_ok=True)
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found = True
            rel = obj["Key"][len(prefix) :]
            if not rel or rel.endswith("/"):
                continue  # a folder placeholder object
            target = folder / rel
            if ".." in Path(rel).parts:
                raise ConventionError(f"refusing object key {obj['Key']!r} that leaves its folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
    if not found:
        raise ConventionError(f"artifact {uri} does not exist (no object and no objects under {prefix!r})")
    return locate_in_folder(folder)


def upload(local: Path, prefix: str, name: str) -> str:
    """Upload the artifact at ``local`` as ``<prefix>/<name>``; return its URI."""
    bucket, key_prefix = split(prefix)
    key = join(key_prefix, name) if key_prefix else name
    s3 = client()
    if local.is_dir():
        s3.put_object(Bucket=bucket, Key=key + "/", Body=b"")  # keeps empty folders visible
        for path in sorted(local.rglob("*")):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"{key}/{path.relative_to(local).as_posix()}")
        return f"s3://{bucket}/{key}/"
    s3.upload_file(str(local), bucket, key)
    return f"s3://{bucket}/{key}"


def put_text(uri: str, text: str) -> None:
    bucket, key = split(uri)
    client().put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json")


def copy_local(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def _existing(path: Path, uri: str) -> Path:
    if not path.exists():
        raise ConventionError(f"artifact {uri} does not exist")
    return path


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(code) if code else None
