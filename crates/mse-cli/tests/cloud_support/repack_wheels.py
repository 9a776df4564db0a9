"""Repacks installed distributions (and what they require) into wheels: an offline wheelhouse
for the --rebuild-env tests, made from the pinned test venv (no package index is reached).

Usage: python repack_wheels.py OUT_DIR NAME...  (run with the venv's python; prints file names)
"""
import os, sys, zipfile, importlib.metadata as md
from pip._vendor.packaging.requirements import Requirement
out = sys.argv[1]
todo, seen = list(sys.argv[2:]), set()
while todo:
    name = todo.pop()
    dist = md.distribution(name)
    key = dist.metadata["Name"].lower().replace("_", "-")
    if key in seen:
        continue
    seen.add(key)
    for r in dist.requires or []:
        req = Requirement(r)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
    tag = next(l.split(":", 1)[1].strip() for l in dist.read_text("WHEEL").splitlines() if l.startswith("Tag:"))
    fname = "%s-%s-%s.whl" % (dist.metadata["Name"].replace("-", "_"), dist.version, tag)
    with zipfile.ZipFile(os.path.join(out, fname), "w", zipfile.ZIP_DEFLATED) as z:
        for f in dist.files:
            s = str(f)
            if s.startswith("..") or "__pycache__" in s or s.endswith(".pyc"):
                continue
            p = dist.locate_file(f)
            if not os.path.isfile(p):
                continue
            info = zipfile.ZipInfo(s, (1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(p).st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(p, "rb") as fh:
                z.writestr(info, fh.read())
    print(fname)
