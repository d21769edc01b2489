"""``tongban serve``: the web app (verification API and pages, review page) on one node's library."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, add_config_args, config_path, load_config, report_error

__all__ = ["cmd_serve", "register"]


def cmd_serve(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Serve until stopped (Ctrl-C)."""
    import uvicorn

    from tongban.web.server import CONFIG_ENV, NODE_ENV

    try:
        ex = load_config(args)
        node = args.node or ex.trust_root
        ex.node(node)
        if not 1 <= args.workers <= 64:
            raise TongbanError(
                "ARGUMENT_INVALID", "--workers 应在 1 到 64 之间", "--workers is 1 to 64", "--workers"
            )
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    os.environ[CONFIG_ENV] = str(config_path(args).resolve())
    os.environ[NODE_ENV] = node
    print(
        f"通办服务 Tongban serving node {node} on http://{args.host}:{args.port}/ "
        f"(OpenAPI /openapi.json; Ctrl-C 停止 stops)",
        file=out,
        flush=True,
    )
    uvicorn.run(
        "tongban.web.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips="127.0.0.1" if args.proxy_headers else None,
    )
    return int(ExitCode.OK)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = add_command(
        sub,
        "serve",
        summary="运行核验与运维网页服务 run the verification and review web service",
        description="在一个节点的库上运行网页服务：核验 API、办事窗口页面、运维审核页面。\n"
        "Run the web service on one node's library: the verification API, the service-window page and "
        "the review page.",
        examples=(
            "tongban serve --workdir demo",
            "tongban serve --workdir demo --node 630000 --port 8080",
            "tongban serve --config /etc/tongban/exchange.yaml --host 0.0.0.0 --workers 4",
        ),
    )
    add_config_args(p)
    p.add_argument(
        "--node", metavar="CODE", help="节点代码 the node whose library answers (默认 default: root)"
    )
    p.add_argument("--host", default="127.0.0.1", help="监听地址 address to listen on")
    p.add_argument("--port", type=int, default=8000, help="端口 port")
    p.add_argument("--workers", type=int, default=1, help="工作进程数 worker processes")
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="信任本机反向代理的 X-Forwarded-* trust X-Forwarded-* from a proxy on this host",
    )
    p.set_defaults(func=cmd_serve)
