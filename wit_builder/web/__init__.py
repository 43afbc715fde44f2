"""The embedded demo "web": real clip art, Tux Paint stamps and emoji turned into image files plus a candidate pool
of (url, text) pairs that looks like the crawled web, and a loopback HTTP server for it.

sources.py  read the three Debian-packaged collections into image records with their texts
noise.py    seeded, deterministic web-like noise (mirrors, dead links, empty/long/mojibake texts, broken images)
build.py    `build_web(out_dir, WebConfig)`: place the files, write pool.parquet and web.json
serve.py    a threaded HTTP server bound to loopback, for img2dataset's many connections
"""
