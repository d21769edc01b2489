"""``tongban verify-offline ATTESTATION|QR-IMAGE --trust-list FILE [--status-list FILE]``: check a
verification slip with no network, and say why it fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, json_line, report_error

__all__ = ["cmd_verify_offline", "register"]

_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")


def _token(arg: str) -> str:
    """The attestation: read from stdin (``-``), from an image's QR code, from a text file, or as given."""
    from tongban.core.verification.attestation import MAX_LENGTH
    from tongban.core.verification.qr import read_qr_file

    if arg == "-":
        return sys.stdin.read(MAX_LENGTH + 1).strip()
    path = Path(arg)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a name too long for a file, or with a NUL: the token itself
        is_file = False
    if is_file:
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith(_IMAGE_MAGIC):
            return read_qr_file(path)
        with path.open("rb") as fh:
            return fh.read(MAX_LENGTH + 1).decode("utf-8", errors="replace").strip()
    return arg.strip()


def cmd_verify_offline(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from tongban.core.trust import TrustList
    from tongban.core.verification import attestation, statuslist

    try:
        trust = TrustList.load(args.trust_list)
        status = None
        if args.status_list:
            try:
                text = Path(args.status_list).read_bytes()
            except OSError as exc:
                raise TongbanError(
                    "STATUS_LIST_INVALID",
                    f"无法读取状态列表：{exc.strerror}",
                    f"cannot read the status list: {exc.strerror}",
                    args.status_list,
                ) from None
            status = statuslist.load(text, trust, args.status_list)
        claims = attestation.check(_token(args.attestation), trust, status_list=status)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    _say(out, args.json, claims, status is not None)
    return ExitCode.OK


def _say(out: TextIO, as_json: bool, claims: dict[str, Any], with_status: bool) -> None:
    if as_json:
        json_line(out, {"valid": True, "claims": claims})
        return
    result = {"match": "核验通过 match", "mismatch": "不一致 mismatch", "not_found": "未找到 not found"}
    status = claims.get("status") or {}
    out.write(
        f"凭证有效 attestation valid: 签发节点 issuer {claims['iss']}，核验于 checked at {claims['checked_at']}\n"
        f"结果 result: {result.get(claims['result'], claims['result'])}"
        + (f"；状态 status: {status.get('state')} ({status.get('code')})" if status else "")
        + "\n"
        + (
            ""
            if with_status
            else "（未给状态列表，未检查此后的吊销 no status list given: later revocations not checked）\n"
        )
    )


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "verify-offline",
        summary="离线核对核验凭证 check an attestation offline",
        description="只用信任列表（与状态列表）离线核对核验凭证（JWT 文本、含凭证的文件，或核验单二维码图片）：\n"
        "签名、密钥（未知、过期、吊销）、凭证有效期，以及此后记录是否被吊销。\n"
        "Check an attestation (the JWT, a file holding it, or a picture of the slip's QR code) with only the\n"
        "trust list (and a status list): signature, key (unknown, expired, revoked), expiry, and whether\n"
        "the record was revoked since.",
        examples=(
            "tongban verify-offline slip.png --trust-list trust.json",
            "tongban verify-offline eyJhbGciOi... --trust-list trust.json --status-list license-status.json",
        ),
    )
    p.add_argument(
        "attestation",
        metavar="ATTESTATION|QR-IMAGE",
        help="凭证、文件或图片；- 读标准输入 token, file or image; - reads stdin",
    )
    p.add_argument(
        "--trust-list", required=True, metavar="FILE", help="信任列表 trust list (GET /v1/trust-list)"
    )
    p.add_argument("--status-list", metavar="FILE", help="状态列表 status list (GET /v1/status-list/DATASET)")
    p.add_argument("--json", action="store_true", help="JSON 输出 JSON output")
    p.set_defaults(func=cmd_verify_offline)
