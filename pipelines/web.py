"""Build and serve the embedded demo web: real clip art, Tux Paint stamps and emoji, with a candidate pool.

wit web build --out DIR        images under DIR/img, DIR/pool.parquet (uid, url, text, source, ...), DIR/web.json
wit web serve DIR              serve DIR on http://127.0.0.1:<the port its URLs name> until Ctrl-C
wit sql DIR "SELECT source, count(*) FROM pool GROUP BY 1"
"""

from __future__ import annotations

import argparse

HELP = "build the embedded demo web and its candidate pool; serve it on loopback"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    build = sub.add_parser("build", help="write images, pool.parquet and web.json under --out")
    build.add_argument("--out", required=True, help="folder to build the web in")
    build.add_argument(
        "--base-url",
        default="http://127.0.0.1:8777",
        help="where the web will be served; the pool's URLs start with it (default %(default)s)",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of the web-like noise (default 0)")
    build.add_argument("--limit", type=int, default=None, help="images per collection (quick builds; default all)")
    build.add_argument(
        "--collections", default="openclipart,tuxpaint,emoji", help="comma-separated collections (default %(default)s)"
    )
    build.add_argument("--force", action="store_true", help="rebuild even when DIR is up to date")
    serve = sub.add_parser("serve", help="serve a built web over HTTP on 127.0.0.1")
    serve.add_argument("dir", help="a folder written by `wit web build`")
    serve.add_argument("--port", type=int, default=None, help="port (default: the one the pool's URLs name)")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _build(args)
    return _serve(args)


def _build(args: argparse.Namespace) -> int:
    from wit_builder.web.build import WebConfig, build_web

    cfg = WebConfig(
        base_url=args.base_url,
        seed=args.seed,
        limit=args.limit,
        collections=tuple(c.strip() for c in args.collections.split(",") if c.strip()),
    )
    summary = build_web(args.out, cfg, force=args.force)
    print(format_summary(summary))
    return 0


def format_summary(summary) -> str:
    """Pairs per collection and per source kind (Tux Paint languages folded into one line), noise and totals."""
    lines = []
    if not summary.rebuilt:
        lines.append(f"web: {summary.out_dir} is up to date (same config and data); --force rebuilds it")
    lines.append(f"{'source':<28}{'pairs':>9}")
    by_source = summary.pairs_by_source
    for collection, total in summary.pairs_by_collection.items():
        lines.append(f"{collection:<28}{total:>9,}")
        kinds = {k: v for k, v in by_source.items() if k.startswith(collection + "/")}
        if collection == "tuxpaint" and len(kinds) > 3:
            english = kinds.get("tuxpaint/en", 0)
            lines.append(f"  {'en':<26}{english:>9,}")
            lines.append(f"  {'other languages (' + str(len(kinds) - 1) + ')':<26}{total - english:>9,}")
        else:
            for kind, n in kinds.items():
                lines.append(f"  {kind.split('/', 1)[1]:<26}{n:>9,}")
    lines.append(f"{'total pairs':<28}{summary.pairs:>9,}")
    lines.append(
        f"images {summary.images:,} · distinct URLs {summary.urls:,} · "
        f"files identical to another {summary.duplicate_image_files:,}"
    )
    lines.append("noise: " + ", ".join(f"{k} {v:,}" for k, v in summary.noise.items()))
    if summary.skipped:
        lines.append("skipped: " + ", ".join(f"{k} {v:,}" for k, v in summary.skipped.items()))
    lines.append(f"pool: {summary.out_dir}/pool.parquet ({summary.seconds:.1f} s)")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from wit_builder.web.build import load_summary
    from wit_builder.web.serve import make_server, port_of

    meta = load_summary(args.dir)
    port = args.port if args.port is not None else port_of(meta["base_url"])
    server = make_server(args.dir, args.host, port)
    url = f"http://{args.host}:{server.server_address[1]}"
    if url != meta["base_url"]:
        print(f"note: the pool's URLs point at {meta['base_url']}, not {url}")
    print(f"serving {args.dir} on {url} ({meta['counts']['pairs']:,} pairs); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
