#!/usr/bin/env python3
"""Generate Blob SAS test vectors with the official Azure SDK for Python.

Writes tests/vectors/python_sdk.json (relative to the repository root).

Every token, string-to-sign and signature in the output comes from SDK code:
the string-to-sign is captured with the SDK's own ``sts_hook`` callback, the
token is the string the SDK returned, and the signature is decoded from that
token. This script never builds a string-to-sign itself; the HMAC it computes
at the end is only a self-check of what the SDK produced.

Required packages (exact versions; the script refuses any other):

    pip install azure-storage-blob==12.31.1 azure-storage-file-datalake==12.26.1

Run (from the repository root):

    python3 scripts/gen_vectors.py            # (re)write tests/vectors/python_sdk.json
    python3 scripts/gen_vectors.py --check    # regenerate in memory, fail if the file differs
    python3 scripts/gen_vectors.py --out FILE # write somewhere else

The output is deterministic: fixed times, fixed keys, fixed names, no clock
and no network.

Signed versions ("sv"): azure-storage-blob 12.31.1 always signs with its own
X_MS_VERSION (2026-10-06); ``BlobSharedAccessSignature.__init__`` takes no
``x_ms_version`` argument. To get vectors for other versions, a few vectors
set the ``x_ms_version`` attribute of a ``BlobSharedAccessSignature`` instance
after construction (attribute inherited from ``SharedAccessSignature``). The
SDK's string-to-sign layout does not change with that attribute, so this is
only done for versions whose layout is the one the SDK emits:
service SAS sv >= 2020-12-06 (16 fields), user delegation SAS sv >= 2026-04-06
(28 fields). See OVERRIDE_OK below.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
from datetime import datetime, timezone
from urllib.parse import unquote

BLOB_VERSION = "12.31.1"
DATALAKE_VERSION = "12.26.1"

try:
    import azure.storage.blob as azblob
    import azure.storage.filedatalake as azdl
except ImportError as exc:  # pragma: no cover
    sys.exit(
        f"missing package ({exc}); run: pip install azure-storage-blob=={BLOB_VERSION} "
        f"azure-storage-file-datalake=={DATALAKE_VERSION}"
    )

if azblob.__version__ != BLOB_VERSION:
    sys.exit(f"azure-storage-blob {azblob.__version__} installed; this script needs exactly {BLOB_VERSION}")
if azdl.__version__ != DATALAKE_VERSION:
    sys.exit(f"azure-storage-file-datalake {azdl.__version__} installed; this script needs exactly {DATALAKE_VERSION}")

from azure.storage.blob import (  # noqa: E402
    BlobSasPermissions,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)
from azure.storage.blob._shared_access_signature import BlobSharedAccessSignature  # noqa: E402
from azure.storage.filedatalake import (  # noqa: E402
    DirectorySasPermissions,
    FileSasPermissions,
    FileSystemSasPermissions,
    generate_directory_sas,
    generate_file_sas,
    generate_file_system_sas,
)

# ---------------------------------------------------------------------------
# Fixed inputs
# ---------------------------------------------------------------------------

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Made-up second account; key = base64(sha512(b"sasgate made-up account key 2")).
ALT_ACCOUNT = "sasgatetest2"
ALT_KEY = "Uz8jWBiQcFTnUXPHY4tw59teU+ZcxFuWaE0IlAyK1ka4h7Or2aJXPfkbL3snX+cM1Jmm4icdNz4EOBBEXX7m2Q=="

ST = "2025-01-01T00:00:00Z"
SE = "2025-01-01T01:00:00Z"
ST_DT = datetime(2025, 1, 1, 0, 0, 0, tzinfo=timezone.utc)
SE_DT = datetime(2025, 1, 1, 1, 0, 0, tzinfo=timezone.utc)

OID = "11111111-1111-1111-1111-111111111111"
TID = "22222222-2222-2222-2222-222222222222"
SDUOID = "33333333-3333-3333-3333-333333333333"
SAOID = "44444444-4444-4444-4444-444444444444"
DUTID = "55555555-5555-5555-5555-555555555555"
SUOID = "66666666-6666-6666-6666-666666666666"
UDK_VALUE = "dXNlci1kZWxlZ2F0aW9uLWtleS1ieXRlcy0zMi1sZW4="  # b"user-delegation-key-bytes-32-len"


def make_udk(delegated_user_tid=None):
    k = UserDelegationKey()
    k.signed_oid = OID
    k.signed_tid = TID
    k.signed_start = "2025-01-01T00:00:00Z"
    k.signed_expiry = "2025-01-02T00:00:00Z"
    k.signed_service = "b"
    k.signed_version = "2025-11-05"
    k.signed_delegated_user_tid = delegated_user_tid
    k.value = UDK_VALUE
    return k


UDK = make_udk()
UDK_DUTID = make_udk(DUTID)

# Signed versions for which the SDK's (fixed) string-to-sign layout is correct.
OVERRIDE_OK = {
    "service": ("2020-12-06", "2025-11-05", "2026-04-06", "2026-06-06"),
    "user_delegation": ("2026-04-06", "2026-06-06"),
}

# Token query keys -> output fields (all are in the token, percent-encoded).
TOKEN_FIELDS = {
    "sp": "permissions",
    "st": "start",
    "se": "expiry",
    "sip": "ip",
    "spr": "protocol",
    "si": "identifier",
    "ses": "encryption_scope",
    "rscc": "cache_control",
    "rscd": "content_disposition",
    "rsce": "content_encoding",
    "rscl": "content_language",
    "rsct": "content_type",
    "saoid": "preauthorized_agent_object_id",
    "suoid": "agent_object_id",
    "scid": "correlation_id",
    "sduoid": "delegated_user_object_id",
    "sv": "version",
}

# SDK keyword -> output field, for inputs we hand to the SDK.
KW_FIELDS = {
    "start": "start",
    "expiry": "expiry",
    "ip": "ip",
    "protocol": "protocol",
    "policy_id": "identifier",
    "encryption_scope": "encryption_scope",
    "cache_control": "cache_control",
    "content_disposition": "content_disposition",
    "content_encoding": "content_encoding",
    "content_language": "content_language",
    "content_type": "content_type",
    "preauthorized_agent_object_id": "preauthorized_agent_object_id",
    "agent_object_id": "agent_object_id",
    "correlation_id": "correlation_id",
    "user_delegation_oid": "delegated_user_object_id",
}

KEY_ORDER = [
    "name", "kind", "account", "key", "udk", "container", "blob", "resource", "snapshot", "version_id",
    "permissions", "start", "expiry", "ip", "protocol", "identifier", "encryption_scope", "cache_control",
    "content_disposition", "content_encoding", "content_language", "content_type",
    "preauthorized_agent_object_id", "agent_object_id", "correlation_id", "delegated_user_object_id",
    "request_headers", "request_query_params", "version", "directory_depth", "string_to_sign", "signature",
    "token",
]


def parse_token(token):
    out = {}
    for part in token.split("&"):
        k, _, v = part.partition("=")
        if k in out:
            raise AssertionError(f"duplicate query key {k!r} in {token!r}")
        out[k] = unquote(v)
    return out


def as_signed_str(v):
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None if v is None else str(v)


def udk_json(k):
    if k is None:
        return None
    return {
        "skoid": k.signed_oid,
        "sktid": k.signed_tid,
        "skt": k.signed_start,
        "ske": k.signed_expiry,
        "sks": k.signed_service,
        "skv": k.signed_version,
        "skdutid": k.signed_delegated_user_tid,
        "value": k.value,
    }


VECTORS = []


def record(name, *, account, key, udk, container, blob, resource, snapshot, version_id, kw, token, sts,
           request_headers=None, request_query_params=None):
    if any(v["name"] == name for v in VECTORS):
        raise AssertionError(f"duplicate vector name {name}")
    if len(sts) != 1:
        raise AssertionError(f"{name}: sts_hook called {len(sts)} times")
    q = parse_token(token)
    if q.get("sr") != resource:
        raise AssertionError(f"{name}: sr={q.get('sr')!r}, expected {resource!r}")
    v = {k: None for k in KEY_ORDER}
    v.update(
        name=name,
        kind="user_delegation" if udk is not None else "service",
        account=account,
        key=key if udk is None else None,
        udk=udk_json(udk),
        container=container,
        blob=blob,
        resource=resource,
        snapshot=snapshot,
        version_id=version_id,
        request_headers=dict(request_headers) if request_headers else None,
        request_query_params=dict(request_query_params) if request_query_params else None,
        directory_depth=int(q["sdd"]) if "sdd" in q else None,
        string_to_sign=sts[0],
        signature=q["sig"],
        token=token,
    )
    for qk, field in TOKEN_FIELDS.items():
        v[field] = q.get(qk)
    # Every input handed to the SDK must show up, unchanged, in the token.
    for kwname, field in KW_FIELDS.items():
        want = as_signed_str(kw.get(kwname))
        if want is not None and v[field] != want:
            raise AssertionError(f"{name}: {field} token={v[field]!r} input={want!r}")
    if udk is not None:
        expect = {"skoid": udk.signed_oid, "sktid": udk.signed_tid, "skt": udk.signed_start,
                  "ske": udk.signed_expiry, "sks": udk.signed_service, "skv": udk.signed_version,
                  "skdutid": udk.signed_delegated_user_tid}
        for qk, want in expect.items():
            if q.get(qk) != want:
                raise AssertionError(f"{name}: {qk} token={q.get(qk)!r} key={want!r}")
    VECTORS.append(v)


def sas(name, *, container, blob=None, account=DEV_ACCOUNT, key=DEV_KEY, udk=None, resource=None,
        snapshot=None, version_id=None, permission=None, expiry=SE, headers=None, query=None, **kw):
    """Generate via the public generate_blob_sas / generate_container_sas functions."""
    sts = []
    cred = dict(user_delegation_key=udk) if udk is not None else dict(account_key=key)
    extra = {}
    if headers:
        extra["request_headers"] = headers
    if query:
        extra["request_query_params"] = query
    kw_all = dict(kw, expiry=expiry)
    if blob is None:
        token = generate_container_sas(account, container, permission=permission, expiry=expiry,
                                       sts_hook=sts.append, **cred, **extra, **kw)
        resource = "c"
    else:
        if version_id is not None:
            extra["version_id"] = version_id
        token = generate_blob_sas(account, container, blob, snapshot=snapshot, permission=permission,
                                  expiry=expiry, sts_hook=sts.append, **cred, **extra, **kw)
        resource = "bv" if version_id else ("bs" if snapshot else "b")
    record(name, account=account, key=key, udk=udk, container=container, blob=blob, resource=resource,
           snapshot=snapshot, version_id=version_id, kw=kw_all, token=token, sts=sts,
           request_headers=headers, request_query_params=query)


def dl(name, *, fn, filesystem, path=None, file_name=None, account=DEV_ACCOUNT, key=DEV_KEY, udk=None,
       permission=None, expiry=SE, headers=None, query=None, **kw):
    """Generate via azure-storage-file-datalake (directory / file system / file SAS)."""
    sts = []
    cred = udk if udk is not None else key
    extra = {}
    if headers:
        extra["request_headers"] = headers
    if query:
        extra["request_query_params"] = query
    if fn == "directory":
        token = generate_directory_sas(account, filesystem, path, cred, permission=permission, expiry=expiry,
                                       sts_hook=sts.append, **extra, **kw)
        resource, blob = "d", path
    elif fn == "file_system":
        token = generate_file_system_sas(account, filesystem, cred, permission=permission, expiry=expiry,
                                         sts_hook=sts.append, **extra, **kw)
        resource, blob = "c", None
    elif fn == "file":
        token = generate_file_sas(account, filesystem, path, file_name, cred, permission=permission,
                                  expiry=expiry, sts_hook=sts.append, **extra, **kw)
        resource, blob = "b", f"{path}/{file_name}"
    else:
        raise ValueError(fn)
    record(name, account=account, key=key, udk=udk, container=filesystem, blob=blob, resource=resource,
           snapshot=None, version_id=None, kw=dict(kw, expiry=expiry), token=token, sts=sts,
           request_headers=headers, request_query_params=query)


def at_version(name, version, *, container, blob=None, account=DEV_ACCOUNT, key=DEV_KEY, udk=None,
               snapshot=None, version_id=None, is_directory=None, permission=None, expiry=SE, headers=None,
               query=None, **kw):
    """Generate with BlobSharedAccessSignature after overriding its x_ms_version attribute."""
    kind = "user_delegation" if udk is not None else "service"
    if version not in OVERRIDE_OK[kind]:
        raise AssertionError(f"{name}: the SDK's {kind} layout is not valid for sv {version}")
    sts = []
    signer = (BlobSharedAccessSignature(account, user_delegation_key=udk) if udk is not None
              else BlobSharedAccessSignature(account, account_key=key))
    signer.x_ms_version = version
    if blob is None:
        token = signer.generate_container(container, permission=permission, expiry=expiry,
                                          request_headers=headers, request_query_params=query,
                                          sts_hook=sts.append, **kw)
        resource = "c"
    else:
        token = signer.generate_blob(container, blob, snapshot=snapshot, version_id=version_id,
                                     permission=permission, expiry=expiry, request_headers=headers,
                                     request_query_params=query, is_directory=is_directory,
                                     sts_hook=sts.append, **kw)
        resource = "d" if is_directory else ("bv" if version_id else ("bs" if snapshot else "b"))
    if parse_token(token)["sv"] != version:
        raise AssertionError(f"{name}: sv override did not take")
    kw.pop("sdd", None)
    record(name, account=account, key=key, udk=udk, container=container, blob=blob, resource=resource,
           snapshot=snapshot, version_id=version_id, kw=dict(kw, expiry=expiry), token=token, sts=sts,
           request_headers=headers, request_query_params=query)


# ---------------------------------------------------------------------------
# The vectors
# ---------------------------------------------------------------------------

UNICODE_BLOB = "日本語/ファイル.txt"
EMOJI_BLOB = "émoji 🎉.bin"
PUNCT_BLOB = "a+b=c&d;e,f@g!h'(i)*~.txt"
SPACE_BLOB = "dir/my blob.txt"
ALL_BLOB_CLASS = BlobSasPermissions(read=True, add=True, create=True, write=True, delete=True,
                                    delete_previous_version=True, permanent_delete=True, list=True, tag=True,
                                    move=True, execute=True, set_immutability_policy=True)
ALL_CONTAINER_CLASS = ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True,
                                              delete_previous_version=True, permanent_delete=True, list=True,
                                              tag=True, filter_by_tags=True, move=True, execute=True,
                                              set_immutability_policy=True)
ALL_DIR_CLASS = DirectorySasPermissions(read=True, create=True, write=True, delete=True, add=True, list=True,
                                        tags=True, move=True, execute=True, manage_ownership=True,
                                        manage_access_control=True)


def build():
    # --- service SAS, blob (sr=b) --------------------------------------------------------------
    sas("svc-b-r-minimal", container="mycontainer", blob="file.txt", permission="r")
    sas("svc-b-r-start", container="mycontainer", blob="file.txt", permission="r", start=ST)
    sas("svc-b-rw-datetime-inputs", container="mycontainer", blob="file.txt", permission="rw",
        start=ST_DT, expiry=SE_DT)
    sas("svc-b-perm-class-all", container="mycontainer", blob="file.txt", permission=ALL_BLOB_CLASS)
    sas("svc-b-perm-raw-all-letters-go-order", container="mycontainer", blob="file.txt",
        permission="racwdxyltmeopi")
    sas("svc-b-perm-class-from-string-scrambled", container="mycontainer", blob="file.txt",
        permission=BlobSasPermissions.from_string("iemtlyxdwcar"))
    sas("svc-b-perm-raw-scrambled-passthrough", container="mycontainer", blob="file.txt", permission="wdr")
    for perm in ("a", "c", "w", "d", "x", "y", "t", "m", "e", "i", "rcw", "racwd", "dxy", "rt", "me"):
        sas(f"svc-b-perm-{perm}", container="mycontainer", blob="file.txt",
            permission=BlobSasPermissions.from_string(perm))
    sas("svc-b-ip-single", container="mycontainer", blob="file.txt", permission="r", ip="168.1.5.65")
    sas("svc-b-ip-range", container="mycontainer", blob="file.txt", permission="r", start=ST,
        ip="168.1.5.60-168.1.5.70")
    sas("svc-b-protocol-https", container="mycontainer", blob="file.txt", permission="r", protocol="https")
    sas("svc-b-protocol-https-http", container="mycontainer", blob="file.txt", permission="r",
        protocol="https,http")
    sas("svc-b-policy-only", container="mycontainer", blob="file.txt", expiry=None, policy_id="policy1")
    sas("svc-b-policy-with-permission", container="mycontainer", blob="file.txt", permission="r",
        expiry=None, policy_id="policy1")
    sas("svc-b-policy-with-expiry", container="mycontainer", blob="file.txt", policy_id="policy1")
    sas("svc-b-policy-with-start-expiry", container="mycontainer", blob="file.txt", start=ST,
        policy_id="read-only-policy")
    sas("svc-b-encryption-scope", container="mycontainer", blob="file.txt", permission="cw",
        encryption_scope="scope1")
    sas("svc-b-rscc", container="mycontainer", blob="file.txt", permission="r", cache_control="no-cache")
    sas("svc-b-rscd", container="mycontainer", blob="file.txt", permission="r",
        content_disposition='attachment; filename="a b.txt"')
    sas("svc-b-rsce", container="mycontainer", blob="file.txt", permission="r", content_encoding="gzip")
    sas("svc-b-rscl", container="mycontainer", blob="file.txt", permission="r", content_language="en-US")
    sas("svc-b-rsct", container="mycontainer", blob="file.txt", permission="r",
        content_type="text/plain; charset=utf-8")
    sas("svc-b-all-optional-fields", container="mycontainer", blob=SPACE_BLOB, permission="racwd", start=ST,
        ip="10.0.0.1-10.0.0.255", protocol="https", encryption_scope="scope-1", cache_control="max-age=60",
        content_disposition="inline; filename=\"r\u00e9sum\u00e9.pdf\"", content_encoding="deflate",
        content_language="de-DE", content_type="application/pdf")
    sas("svc-b-name-unicode-cjk", container="mycontainer", blob=UNICODE_BLOB, permission="r", start=ST)
    sas("svc-b-name-emoji", container="mycontainer", blob=EMOJI_BLOB, permission="rw", protocol="https")
    sas("svc-b-name-punctuation", container="mycontainer", blob=PUNCT_BLOB, permission="r")
    sas("svc-b-name-space", container="mycontainer", blob=SPACE_BLOB, permission="rw", start=ST,
        ip="10.0.0.1-10.0.0.255", protocol="https")
    sas("svc-b-name-hash-question", container="mycontainer", blob="q/hash#and?question.txt", permission="r")
    sas("svc-b-name-deep", container="photos-2025", blob="2025/01/01/img 0001.jpeg", permission="r",
        content_type="image/jpeg")
    sas("svc-b-alt-account", container="data", blob="report.csv", account=ALT_ACCOUNT, key=ALT_KEY,
        permission="rw", start=ST, protocol="https")
    sas("svc-b-alt-account-unicode", container="data", blob=UNICODE_BLOB, account=ALT_ACCOUNT, key=ALT_KEY,
        permission=ALL_BLOB_CLASS, ip="192.168.0.1")

    # --- service SAS, snapshot (sr=bs) and version (sr=bv) ------------------------------------
    sas("svc-bs-r", container="mycontainer", blob="file.txt", snapshot="2025-01-01T00:00:00.0000000Z",
        permission="r")
    sas("svc-bs-rd-all-fields", container="mycontainer", blob=EMOJI_BLOB,
        snapshot="2025-03-04T05:06:07.1234567Z", permission="rdx", start=ST, ip="168.1.5.65",
        protocol="https,http", encryption_scope="scope1", content_type="application/octet-stream")
    sas("svc-bs-alt-account", container="data", blob="report.csv", account=ALT_ACCOUNT, key=ALT_KEY,
        snapshot="2024-12-31T23:59:59.9999999Z", permission="r")
    sas("svc-bv-r", container="mycontainer", blob="file.txt", version_id="2025-01-01T00:00:00.1234567Z",
        permission="r")
    sas("svc-bv-dx-unicode", container="mycontainer", blob=UNICODE_BLOB,
        version_id="2024-12-31T23:59:59.9999999Z", permission="dx", start=ST, protocol="https")
    sas("svc-bv-policy", container="mycontainer", blob=PUNCT_BLOB, version_id="2025-06-15T12:30:45.0000001Z",
        expiry=None, policy_id="policy1")

    # --- service SAS, container (sr=c) --------------------------------------------------------
    sas("svc-c-rl", container="mycontainer", permission="rl", start=ST, protocol="https")
    sas("svc-c-perm-class-all", container="mycontainer", permission=ALL_CONTAINER_CLASS)
    sas("svc-c-perm-raw-all-letters-go-order", container="mycontainer", permission="racwdxyltfmeopi")
    for perm in ("l", "f", "rlf", "rwdl", "t", "racwdl", "xy", "me", "i"):
        sas(f"svc-c-perm-{perm}", container="mycontainer", permission=ContainerSasPermissions.from_string(perm))
    sas("svc-c-policy-only", container="mycontainer", expiry=None, policy_id="policy1")
    sas("svc-c-policy-with-permission", container="mycontainer", permission="rl", expiry=None,
        policy_id="list-policy")
    sas("svc-c-all-optional-fields", container="mycontainer", permission="rl", start=ST, ip="168.1.5.65",
        protocol="https,http", encryption_scope="scope1", cache_control="no-store",
        content_disposition="attachment", content_encoding="identity", content_language="fr",
        content_type="text/csv")
    sas("svc-c-alt-account", container="data", account=ALT_ACCOUNT, key=ALT_KEY, permission="rwl",
        start=ST_DT, expiry=SE_DT, ip="10.1.2.3-10.1.2.4")

    # --- service SAS via azure-storage-file-datalake (sr=d, and c/b for comparison) -----------
    dl("svc-d-depth1", fn="directory", filesystem="myfs", path="dir1", permission="rl")
    dl("svc-d-depth2-start-https", fn="directory", filesystem="myfs", path="dir1/dir2", permission="rl",
       start=ST, protocol="https")
    dl("svc-d-perm-class-all", fn="directory", filesystem="myfs", path="a/b/c", permission=ALL_DIR_CLASS)
    dl("svc-d-unicode-space", fn="directory", filesystem="myfs", path="日本語/my dir", permission="racwd",
       ip="168.1.5.60-168.1.5.70", cache_control="no-cache")
    dl("svc-d-alt-account", fn="directory", filesystem="lake", path="raw/2025", account=ALT_ACCOUNT,
       key=ALT_KEY, permission="rlmeop", start=ST, protocol="https,http", encryption_scope="scope1")
    dl("svc-d-policy-only", fn="directory", filesystem="myfs", path="dir1", expiry=None, policy_id="policy1")
    dl("svc-dl-file-system", fn="file_system", filesystem="myfs",
       permission=FileSystemSasPermissions(read=True, list=True), start=ST)
    dl("svc-dl-file", fn="file", filesystem="myfs", path="dir1/dir2", file_name="data 1.parquet",
       permission=FileSasPermissions(read=True, write=True), start=ST)

    # --- service SAS at other signed versions (same 16-field layout) --------------------------
    for ver in ("2020-12-06", "2025-11-05", "2026-04-06", "2026-06-06"):
        at_version(f"svc-b-sv{ver}-design-C1", ver, container="mycontainer", blob=SPACE_BLOB, permission="rw",
                   start=ST, ip="10.0.0.1-10.0.0.255", protocol="https")
    at_version("svc-c-sv2020-12-06-design-C7", "2020-12-06", container="mycontainer", permission="rl",
               start=ST, protocol="https")
    at_version("svc-b-sv2020-12-06-design-C8", "2020-12-06", container="mycontainer", blob="file.txt",
               expiry=None, policy_id="policy1")
    at_version("svc-b-sv2020-12-06-design-C9", "2020-12-06", container="mycontainer", blob="file.txt",
               permission="r", protocol="https", encryption_scope="scope1", cache_control="no-cache",
               content_disposition='attachment; filename="a b.txt"', content_type="text/plain")
    at_version("svc-bs-sv2020-12-06-design-C10", "2020-12-06", container="mycontainer", blob="file.txt",
               snapshot="2025-01-01T00:00:00.0000000Z", permission="r")
    at_version("svc-bv-sv2020-12-06-design-C11", "2020-12-06", container="mycontainer", blob="file.txt",
               version_id="2025-01-01T00:00:00.1234567Z", permission="r")
    at_version("svc-d-sv2020-12-06-design-C12", "2020-12-06", container="myfs", blob="dir1/dir2",
               is_directory=True, sdd=2, permission="rl", start=ST, protocol="https")
    at_version("svc-b-sv2025-11-05-alt-account-all-fields", "2025-11-05", container="data", blob=PUNCT_BLOB,
               account=ALT_ACCOUNT, key=ALT_KEY, permission="racwdxytmei", start=ST, ip="168.1.5.65",
               protocol="https", policy_id="p1", encryption_scope="scope1", cache_control="no-cache",
               content_disposition="inline", content_encoding="br", content_language="ja-JP",
               content_type="text/plain")

    # --- user delegation SAS ------------------------------------------------------------------
    sas("udk-b-r", container="mycontainer", blob="file.txt", udk=UDK, permission="r", start=ST, protocol="https")
    sas("udk-b-perm-class-all", container="mycontainer", blob="file.txt", udk=UDK, permission=ALL_BLOB_CLASS)
    sas("udk-b-rw-minimal", container="mycontainer", blob="file.txt", udk=UDK, permission="rw")
    sas("udk-b-saoid", container="mycontainer", blob="file.txt", udk=UDK, permission="r",
        preauthorized_agent_object_id=SAOID)
    sas("udk-b-suoid", container="mycontainer", blob="file.txt", udk=UDK, permission="r",
        agent_object_id=SUOID)
    sas("udk-b-scid", container="mycontainer", blob="file.txt", udk=UDK, permission="r",
        correlation_id="sasgate-issuance-0001")
    sas("udk-b-sduoid", container="mycontainer", blob="file.txt", udk=UDK, permission="r",
        user_delegation_oid=SDUOID)
    sas("udk-b-skdutid-sduoid", container="mycontainer", blob="file.txt", udk=UDK_DUTID, permission="r",
        user_delegation_oid=SDUOID)
    sas("udk-b-srh", container="mycontainer", blob="file.txt", udk=UDK, permission="cw",
        headers={"x-ms-blob-type": "BlockBlob"})
    sas("udk-b-srh-multi", container="mycontainer", blob="file.txt", udk=UDK, permission="cw",
        headers={"content-type": "text/plain", "x-ms-blob-type": "BlockBlob",
                 "x-ms-encryption-scope": "scope1"})
    sas("udk-b-srq", container="mycontainer", blob="file.txt", udk=UDK, permission="r",
        query={"comp": "tags"})
    sas("udk-b-srh-srq", container="mycontainer", blob=SPACE_BLOB, udk=UDK, permission="rw",
        headers={"x-ms-blob-type": "AppendBlob", "x-ms-meta-owner": "alice"},
        query={"comp": "appendblock", "timeout": "30"})
    sas("udk-b-all-optional-fields", container="mycontainer", blob=UNICODE_BLOB, udk=UDK_DUTID,
        permission="racwdxyltmei", start=ST, ip="168.1.5.60-168.1.5.70", protocol="https",
        encryption_scope="scope1", cache_control="no-cache", content_disposition='attachment; filename="f.txt"',
        content_encoding="gzip", content_language="ja", content_type="text/plain",
        preauthorized_agent_object_id=SAOID, agent_object_id=SUOID, correlation_id="corr-1",
        user_delegation_oid=SDUOID, headers={"x-ms-blob-type": "BlockBlob"}, query={"comp": "block"})
    sas("udk-b-name-emoji", container="mycontainer", blob=EMOJI_BLOB, udk=UDK, permission="r",
        protocol="https,http", start=ST_DT, expiry=SE_DT)
    sas("udk-b-name-punctuation", container="mycontainer", blob=PUNCT_BLOB, udk=UDK, permission="r",
        ip="168.1.5.65")
    sas("udk-b-alt-account", container="data", blob="report.csv", account=ALT_ACCOUNT, udk=UDK,
        permission="r", start=ST, correlation_id="corr-alt")
    sas("udk-bs-r", container="mycontainer", blob="file.txt", udk=UDK, snapshot="2025-01-01T00:00:00.0000000Z",
        permission="r", start=ST)
    sas("udk-bv-r", container="mycontainer", blob="file.txt", udk=UDK, version_id="2025-01-01T00:00:00.1234567Z",
        permission="r", start=ST, protocol="https")
    sas("udk-bv-dx-all-udk-fields", container="mycontainer", blob=EMOJI_BLOB, udk=UDK_DUTID,
        version_id="2024-12-31T23:59:59.9999999Z", permission="dx", preauthorized_agent_object_id=SAOID,
        correlation_id="corr-2", user_delegation_oid=SDUOID, headers={"x-ms-version": "2026-10-06"})
    sas("udk-c-rl", container="mycontainer", udk=UDK, permission="rl", start=ST, protocol="https")
    sas("udk-c-perm-class-all", container="mycontainer", udk=UDK, permission=ALL_CONTAINER_CLASS)
    sas("udk-c-srh-srq", container="mycontainer", udk=UDK, permission="rl", start=ST, protocol="https",
        headers={"x-ms-blob-type": "BlockBlob"}, query={"comp": "list"})
    sas("udk-c-all-udk-fields", container="mycontainer", udk=UDK_DUTID, permission="rwl",
        preauthorized_agent_object_id=SAOID, agent_object_id=SUOID, correlation_id="corr-3",
        user_delegation_oid=SDUOID, encryption_scope="scope1", ip="10.0.0.1", protocol="https",
        query={"comp": "list", "restype": "container"})
    dl("udk-d-depth2", fn="directory", filesystem="myfs", path="dir1/dir2", udk=UDK, permission="rl",
       start=ST, protocol="https")
    dl("udk-d-perm-class-all-hns-fields", fn="directory", filesystem="myfs", path="a/b/c", udk=UDK_DUTID,
       permission=ALL_DIR_CLASS, preauthorized_agent_object_id=SAOID, agent_object_id=SUOID,
       correlation_id="corr-4", user_delegation_oid=SDUOID)
    dl("udk-d-unicode-srh-srq", fn="directory", filesystem="myfs", path="日本語/フォルダ", udk=UDK,
       permission="racwdl", headers={"x-ms-version": "2026-10-06"}, query={"resource": "directory"})
    dl("udk-dl-file-system", fn="file_system", filesystem="myfs", udk=UDK,
       permission=FileSystemSasPermissions(read=True, list=True), correlation_id="corr-fs")

    # --- user delegation SAS at other signed versions (same 28-field layout) ------------------
    at_version("udk-b-sv2026-04-06-design-C14d", "2026-04-06", container="mycontainer", blob="file.txt",
               udk=UDK, permission="r", start=ST, protocol="https")
    at_version("udk-c-sv2026-04-06-design-C16", "2026-04-06", container="mycontainer", udk=UDK,
               permission="rl", start=ST, protocol="https", headers={"x-ms-blob-type": "BlockBlob"},
               query={"comp": "list"})
    at_version("udk-d-sv2026-04-06-design-C17", "2026-04-06", container="myfs", blob="dir1/dir2", udk=UDK,
               is_directory=True, sdd=2, permission="rl", start=ST, protocol="https")
    at_version("udk-bv-sv2026-06-06-skdutid", "2026-06-06", container="mycontainer", blob=UNICODE_BLOB,
               udk=UDK_DUTID, version_id="2025-01-01T00:00:00.1234567Z", permission="r", start=ST,
               correlation_id="corr-5", user_delegation_oid=SDUOID)


def self_check(vectors):
    for v in vectors:
        k = v["key"] if v["kind"] == "service" else v["udk"]["value"]
        mac = hmac.new(base64.b64decode(k), v["string_to_sign"].encode("utf-8"), hashlib.sha256).digest()
        if base64.b64encode(mac).decode() != v["signature"]:
            raise AssertionError(f"{v['name']}: HMAC self-check failed")
    return len(vectors)


def render():
    build()
    doc = {
        "generator": f"azure-storage-blob {azblob.__version__}, azure-storage-file-datalake {azdl.__version__}",
        "vectors": VECTORS,
    }
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "vectors", "python_sdk.json"))
    ap.add_argument("--check", action="store_true", help="fail if the output file is not up to date")
    args = ap.parse_args()
    text = render()
    n = self_check(VECTORS)
    if args.check:
        with open(args.out, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit(f"{args.out} is out of date; rerun scripts/gen_vectors.py")
        print(f"{args.out}: up to date, {n} vectors, HMAC self-check ok")
        return
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {n} vectors to {args.out} (HMAC self-check ok)")


if __name__ == "__main__":
    main()
