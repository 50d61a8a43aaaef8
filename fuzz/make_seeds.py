#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/target/seeds/<target>/ (not committed),
from the repository's own examples: the SAS test vectors (tests/vectors/*.json), SAS URLs quoted
in tests and sources, the shipped policy files and the TOML in the tests, and the mint bodies of
the API tests.

The committed corpora (fuzz/corpus/<target>/) grew from these seeds; run this again to start a
corpus afresh: `python3 fuzz/make_seeds.py` from the repository root.
"""

import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "target" / "seeds"


def write(target: str, items) -> int:
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for item in items:
        data = item.encode("utf-8", "replace") if isinstance(item, str) else item
        if not data:
            continue
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        n += 1
    return n


def sources():
    for path in sorted((ROOT / "src").rglob("*.rs")):
        yield path
    for path in sorted((ROOT / "tests").glob("*.rs")):
        yield path


def vectors():
    for path in sorted((ROOT / "tests" / "vectors").glob("*.json")):
        yield from json.loads(path.read_text())["vectors"]


def sas_seeds():
    out = set()
    for v in vectors():
        token = v.get("token")
        if not token:
            continue
        out.add(token)
        out.add("?" + token)
        account = v.get("account") or "devstoreaccount1"
        path = "/".join(p for p in (v.get("container"), v.get("blob")) if p)
        out.add(f"https://{account}.blob.core.windows.net/{path}?{token}")
        out.add(f"https://127.0.0.1:10000/{account}/{path}?{token}")
    url = re.compile(r"https?://[^ \"'`]*sig=[^ \"'`\\)]*")
    bare = re.compile(r"\bsv=[^ \"'`\\)]*sig=[^ \"'`\\)]*")
    for path in sources():
        text = path.read_text(errors="replace")
        out.update(url.findall(text))
        out.update(bare.findall(text))
    return sorted(out)


def name_seeds():
    out = {"models/a.bin", "published/model.bin", "dir/my blob.txt", "日本語/ファイル", ".hidden",
           "a..b", "a/../b", "a%2e%2e/b", "a\\b", "a./b", "a//b", "/a", "a/", "$root", "$web",
           "$logs", "ci-build", "devstoreaccount1", "a--b", "Models", "a\u0085", "a\ufffe"}
    for v in vectors():
        for key in ("account", "container", "blob"):
            if v.get(key):
                out.add(v[key])
    field = re.compile(r'"(?:account|container|blob)":\s*"((?:[^"\\]|\\.)*)"')
    for path in sources():
        for m in field.findall(path.read_text(errors="replace")):
            try:
                out.add(json.loads(f'"{m}"'))
            except ValueError:
                out.add(m)
    return sorted(out)


def policy_seeds():
    out = []
    for path in sorted((ROOT / "policy").glob("*.toml")):
        out.append(path.read_text())
    raw = re.compile(r'r#"(.*?)"#', re.S)
    for path in sources():
        for block in raw.findall(path.read_text(errors="replace")):
            if "[[rule]]" in block or "[rule" in block:
                out.append(block)
    # Each rule of the shipped files on its own, and the rules of the test policies too.
    for text in list(out):
        for part in text.split("[[rule]]")[1:]:
            out.append("[[rule]]" + part)
    # Two files in one input: the loader splits at NUL.
    shipped = [p.read_text() for p in sorted((ROOT / "policy").glob("*.toml"))]
    out.append("\0".join(shipped))
    return out


def body_seeds():
    out = set()
    design = {"account": "devstoreaccount1", "container": "data", "blob": "models/a.bin",
              "permissions": "r", "ttl": "15m", "ip": "203.0.113.0/24",
              "reason": "paper reproduction"}
    out.add(json.dumps(design))
    macro = re.compile(r"json!\((\{[^;]*?\})\)", re.S)
    for path in sources():
        for m in macro.findall(path.read_text(errors="replace")):
            text = re.sub(r",\s*\}", "}", m)
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict) and ("account" in value or "container" in value):
                out.add(json.dumps(value, ensure_ascii=False))
    return sorted(out)


def main():
    counts = {
        "sas_parse": write("sas_parse", sas_seeds()),
        "sas_lint": write("sas_lint", sas_seeds()),
        "names": write("names", name_seeds()),
        "policy_load": write("policy_load", policy_seeds()),
        "mint_body": write("mint_body", body_seeds()),
    }
    for target, n in counts.items():
        print(f"{target}: {n} seeds")


if __name__ == "__main__":
    main()
