"""The catalogue of operational error codes: every code a layer raises, declared once.

Row findings have their own catalogue (:mod:`schemas.rules`). These are the codes of everything else
that can go wrong — a config, a mapping, a file, a local system, a library, a key, a batch, the spool,
the command line — each with its meaning in Chinese and English, whether a retry can help (Airflow
retries those and fails the rest at once), and the exit code the ``tongban`` command ends with.
:class:`TongbanError` is the one base exception: a code, messages in both languages, and where it was
found. ``docs/errors.md`` is generated from this page (``tongban errors --markdown``).

Codes never change meaning once published; add new ones, do not reuse old ones.

>>> CATALOGUE["SQL_UNREACHABLE"].retryable, CATALOGUE["BATCH_SIGNER"].retryable
(True, False)
>>> int(CATALOGUE["CONFIG_INVALID"].exit), int(CATALOGUE["BATCH_OWNER"].exit)
(2, 4)
>>> TongbanError("EDGE_BUSY", "忙", "busy", "edge").retryable
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["CATALOGUE", "ErrorCode", "ExitCode", "TongbanError", "lookup"]


class ExitCode(IntEnum):
    """How the ``tongban`` command ends; scripts branch on these."""

    OK = 0  # done, nothing rejected (warnings allowed)
    REJECTED = 1  # done, but rows were rejected or files quarantined (kept as failed transfers)
    UNUSABLE = 2  # unusable input: config, arguments, mapping, file, key
    INTERNAL = 3  # a bug: one line on stderr, no stack trace (TONGBAN_DEBUG=1 shows it)
    RUN_FAILED = 4  # a run failed: a system or library down, a batch refused, an edge busy
    INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM; what committed stays whole


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One operational code: what it means, whether a retry can help, how the command exits."""

    code: str
    area: str  # config, mapping, file, system, library, trust, batch, spool, run, reconcile, cli, demo
    zh: str
    en: str
    retryable: bool = False
    exit: ExitCode = ExitCode.UNUSABLE


U, R = ExitCode.UNUSABLE, ExitCode.RUN_FAILED

# (code, area, meaning zh, meaning en, retryable, exit code)
_ENTRIES: tuple[tuple[str, str, str, str, bool, ExitCode], ...] = (
    # The exchange config (exchange.yaml)
    ("CONFIG_NOT_FOUND", "config", "找不到配置文件", "the config file does not exist", False, U),
    (
        "CONFIG_UNREADABLE",
        "config",
        "配置文件无法读取或不是 UTF-8",
        "the config file cannot be read or is not UTF-8",
        False,
        U,
    ),
    (
        "CONFIG_TOO_LARGE",
        "config",
        "配置文件超过大小或节点数上限",
        "the config file exceeds the size or node limit",
        False,
        U,
    ),
    ("CONFIG_TOO_DEEP", "config", "配置文件嵌套过深", "the config file is nested too deeply", False, U),
    ("CONFIG_SYNTAX", "config", "配置文件不是有效的 YAML", "the config file is not valid YAML", False, U),
    (
        "CONFIG_INVALID",
        "config",
        "字段缺失、未知或取值无效",
        "a field is missing, unknown or has an invalid value",
        False,
        U,
    ),
    ("CONFIG_DUPLICATE", "config", "名称或代码重复", "a name or code is used twice", False, U),
    (
        "CONFIG_REFERENCE",
        "config",
        "引用了不存在的节点或本地系统",
        "a reference names no node or system",
        False,
        U,
    ),
    (
        "CONFIG_TOPOLOGY",
        "config",
        "节点层级或上级关系不成立",
        "the levels or parents of the nodes do not fit",
        False,
        U,
    ),
    ("CONFIG_DATASET", "config", "未知数据集", "an unknown dataset", False, U),
    (
        "CONFIG_ENV_MISSING",
        "config",
        "配置所指的环境变量未设置",
        "an environment variable the config names is not set",
        False,
        U,
    ),
    (
        "CONFIG_ENV_INVALID",
        "config",
        "环境变量中的地址无效",
        "the URL in an environment variable is invalid",
        False,
        U,
    ),
    (
        "CONFIG_CONN_MISSING",
        "config",
        "配置所指的 Airflow 连接不存在",
        "an Airflow connection the config names does not exist",
        False,
        U,
    ),
    (
        "CONFIG_CONN_INVALID",
        "config",
        "Airflow 连接的地址无效",
        "an Airflow connection's URI is invalid",
        False,
        U,
    ),
    ("NODE_UNKNOWN", "config", "未知节点", "an unknown node", False, U),
    ("SYSTEM_UNKNOWN", "config", "未知本地系统", "an unknown local system", False, U),
    ("EDGE_UNKNOWN", "config", "未知同步边", "an unknown sync edge", False, U),
    # Column mappings
    ("MAPPING_NOT_FOUND", "mapping", "找不到映射文件", "the mapping file does not exist", False, U),
    ("MAPPING_UNREADABLE", "mapping", "映射文件无法读取", "the mapping file cannot be read", False, U),
    (
        "MAPPING_TOO_LARGE",
        "mapping",
        "映射文件超过大小或节点数上限",
        "the mapping file exceeds the size or node limit",
        False,
        U,
    ),
    ("MAPPING_TOO_DEEP", "mapping", "映射文件嵌套过深", "the mapping file is nested too deeply", False, U),
    ("MAPPING_SYNTAX", "mapping", "映射文件不是有效的 YAML", "the mapping file is not valid YAML", False, U),
    ("MAPPING_INVALID", "mapping", "映射文件的字段无效", "a field of the mapping is invalid", False, U),
    (
        "MAPPING_FIELD",
        "mapping",
        "映射指向未知字段或把两列映射到同一字段",
        "the mapping names an unknown field or maps two columns to one",
        False,
        U,
    ),
    (
        "MAPPING_DATASET",
        "mapping",
        "映射所属数据集与所校验的不同",
        "the mapping is for another dataset",
        False,
        U,
    ),
    (
        "MAPPING_VALUE",
        "mapping",
        "代码表把本地代码映射到不在代码表中的值",
        "a code table maps a local code to a value outside the field's code list",
        False,
        U,
    ),
    ("COLUMN_MISSING", "mapping", "抽取结果缺少必需的列", "the extract lacks a required column", False, U),
    ("DATASET_UNKNOWN", "mapping", "未知数据集", "an unknown dataset", False, U),
    ("DATASET_MISSING", "mapping", "未指定数据集", "no dataset given", False, U),
    ("ALLOWLIST_INVALID", "mapping", "统一社会信用代码白名单无效", "the USCC allowlist is invalid", False, U),
    (
        "ALLOWLIST_UNREADABLE",
        "mapping",
        "统一社会信用代码白名单无法读取",
        "the USCC allowlist cannot be read",
        False,
        U,
    ),
    # Extract files and drop folders
    ("FILE_NOT_FOUND", "file", "找不到文件", "the file does not exist", False, U),
    ("FILE_FORMAT", "file", "不支持的文件类型", "an unsupported file type", False, U),
    ("FILE_EMPTY", "file", "文件为空，没有表头", "the file is empty: no header row", False, U),
    ("FILE_HEADER", "file", "表头有重复列", "the header repeats a column", False, U),
    (
        "FILE_ENCODING",
        "file",
        "文件不是所声明的编码（映射的 encoding 可改，如 gb18030）",
        "the file is not in the declared encoding (set the mapping's encoding, e.g. gb18030)",
        False,
        U,
    ),
    (
        "FILE_MALFORMED",
        "file",
        "文件损坏、被截断或不是其后缀所示的格式",
        "the file is damaged, truncated or not the format its suffix says",
        False,
        U,
    ),
    ("FILE_TOO_DEEP", "file", "文件内容嵌套过深", "the file's content is nested too deeply", False, U),
    ("FILE_LINE_TOO_LONG", "file", "一行超过长度上限", "a line exceeds the length limit", False, U),
    ("FILE_TOO_MANY_COLUMNS", "file", "列数超过上限", "the file has more columns than allowed", False, U),
    ("FILE_FIELD_TOO_LARGE", "file", "一个值超过读取上限", "one value exceeds the reader's limit", False, U),
    ("FILE_TOO_LARGE", "file", "文件内容过大，无法读取", "the file's content is too large to read", False, U),
    (
        "FILE_UNREADABLE",
        "file",
        "文件无法读取（权限或磁盘）",
        "the file cannot be read (permissions or disk)",
        False,
        U,
    ),
    (
        "DROP_NOT_FOUND",
        "file",
        "找不到投放目录或要移动的文件",
        "the drop folder, or a file to move, does not exist",
        False,
        R,
    ),
    (
        "DROP_MOVE_FAILED",
        "file",
        "移动投放文件失败，文件保留原处",
        "moving a drop file failed; the file stays where it was",
        True,
        R,
    ),
    # Local SQL systems
    (
        "SQL_UNREACHABLE",
        "system",
        "无法连接本地系统的数据库",
        "the local system's database cannot be reached",
        True,
        R,
    ),
    ("SQL_ERROR", "system", "本地系统的查询失败", "a query on the local system failed", True, R),
    (
        "SQL_NO_TABLE",
        "system",
        "本地系统中没有该表或未指定表",
        "the local system has no such table, or none was given",
        False,
        R,
    ),
    (
        "SQL_NO_COLUMN",
        "system",
        "本地系统的表中没有该列",
        "the local system's table has no such column",
        False,
        R,
    ),
    # Libraries
    ("LIBRARY_URL", "library", "库地址无效", "the library URL is invalid", False, U),
    ("LIBRARY_UNREACHABLE", "library", "无法连接节点的库", "the node's library cannot be reached", True, R),
    (
        "LIBRARY_TOO_NEW",
        "library",
        "库的结构版本比本程序新",
        "the library's schema is newer than this program",
        False,
        R,
    ),
    # Encryption at rest
    (
        "MASTER_KEY_MISSING",
        "library",
        "节点没有主密钥（运行 tongban init，或设置 TONGBAN_MASTER_KEY_<节点>）",
        "the node has no master key (run tongban init, or set TONGBAN_MASTER_KEY_<node>)",
        False,
        U,
    ),
    (
        "MASTER_KEY_INVALID",
        "library",
        "主密钥不是 32 字节的 base64，或其文件可被他人读取",
        "the master key is not 32 bytes of base64, or its file is readable by others",
        False,
        U,
    ),
    (
        "MASTER_KEY_WRONG",
        "library",
        "主密钥不是加密此库数据密钥的那一把",
        "the master key is not the one that wrapped this library's data keys",
        False,
        U,
    ),
    (
        "DATA_KEY_UNKNOWN",
        "library",
        "密文所指的数据密钥不在库中",
        "a ciphertext names a data key the library does not hold",
        False,
        R,
    ),
    (
        "DATA_TAMPERED",
        "library",
        "库中的密文或数据密钥被改动，无法通过认证",
        "a ciphertext or data key in the library was altered and fails authentication",
        False,
        R,
    ),
    (
        "LOOKUP_FIELD",
        "library",
        "该字段不能用于查找（既非主键、未加密字段，也无索引）",
        "records cannot be looked up by this field (not the key, not plain, not indexed)",
        False,
        U,
    ),
    # Keys and the trust list
    (
        "NODE_INVALID",
        "trust",
        "节点代码含不允许的字符",
        "a node code has characters that are not allowed",
        False,
        U,
    ),
    (
        "KEY_MISSING",
        "trust",
        "节点没有签名密钥（先运行 tongban init）",
        "the node has no signing key (run tongban init)",
        False,
        U,
    ),
    ("KEY_UNREADABLE", "trust", "私钥文件无法读取", "a private key file cannot be read", False, U),
    ("KEY_UNKNOWN", "trust", "信任列表中没有该密钥", "the key is not in the trust list", False, U),
    ("KEY_NODE_MISMATCH", "trust", "密钥属于另一个节点", "the key belongs to another node", False, U),
    ("KEY_REVOKED", "trust", "密钥已吊销", "the key is revoked", False, U),
    ("KEY_EXPIRED", "trust", "密钥不在有效期内", "the key is outside its validity", False, U),
    (
        "KEY_CURRENT",
        "trust",
        "该密钥是节点当前使用的密钥（先轮换，或加 --force）",
        "the key is the one its node signs with now (rotate first, or --force)",
        False,
        U,
    ),
    ("KEY_NOT_REVOKED", "trust", "修复前须先吊销该密钥", "the key must be revoked before a repair", False, U),
    (
        "KEYS_ARGUMENT",
        "trust",
        "keys 命令缺少节点或密钥编号",
        "the keys command lacks a node or key id",
        False,
        U,
    ),
    (
        "ROOT_KEY_UNLISTED",
        "trust",
        "根节点的当前密钥不在信任列表中或已吊销",
        "the root's current key is not listed or is revoked",
        False,
        U,
    ),
    (
        "ROOT_REVOKE",
        "trust",
        "不能吊销根节点的当前密钥（先轮换）",
        "the root's current key cannot be revoked (rotate it first)",
        False,
        U,
    ),
    ("TRUST_UNREADABLE", "trust", "信任列表无法读取", "the trust list cannot be read", False, U),
    ("TRUST_SIGNATURE", "trust", "信任列表签名无效", "the trust list's signature is invalid", False, U),
    (
        "TRUST_UNPINNED",
        "trust",
        "库中没有固定的根公钥（先运行 tongban init）",
        "the library has no pinned root key (run tongban init)",
        False,
        R,
    ),
    (
        "TRUST_ROOT_MISMATCH",
        "trust",
        "已有信任列表的根节点不同",
        "the existing trust list has another root",
        False,
        U,
    ),
    # Batches (a batch that fails is refused whole and kept as a failed transfer)
    ("MANIFEST_INVALID", "batch", "批次清单格式无效", "the batch manifest is malformed", False, R),
    (
        "BATCH_KEY_UNKNOWN",
        "batch",
        "批次签名密钥不在信任列表中",
        "the batch's signing key is not in the trust list",
        False,
        R,
    ),
    ("BATCH_KEY_REVOKED", "batch", "批次签名密钥已吊销", "the batch's signing key is revoked", False, R),
    (
        "BATCH_KEY_EXPIRED",
        "batch",
        "批次签名密钥在签名时不在有效期内",
        "the batch's signing key was not valid when it signed",
        False,
        R,
    ),
    (
        "BATCH_KEY_NODE",
        "batch",
        "批次签名密钥属于另一个节点",
        "the batch's signing key belongs to another node",
        False,
        R,
    ),
    (
        "BATCH_SIGNATURE",
        "batch",
        "批次清单签名无效（被改动或签名者不符）",
        "the manifest's signature is invalid (altered, or another signer)",
        False,
        R,
    ),
    (
        "BATCH_SIGNER",
        "batch",
        "签名节点不是本边的来源节点",
        "the signer is not the node that seals for this edge",
        False,
        R,
    ),
    (
        "BATCH_EDGE",
        "batch",
        "批次清单所属同步边不是正在载入的边",
        "the manifest names another edge than the one loading it",
        False,
        R,
    ),
    (
        "BATCH_TARGET",
        "batch",
        "批次清单的目标节点不是本库",
        "the manifest names another target than this library",
        False,
        R,
    ),
    (
        "BATCH_DATASET",
        "batch",
        "批次清单的数据集不是正在载入的数据集",
        "the manifest names another dataset than the one loading it",
        False,
        R,
    ),
    (
        "BATCH_OWNER",
        "batch",
        "批次含有不属于签名节点及其下级的记录",
        "the batch holds records owned by neither the signer nor a node below it",
        False,
        R,
    ),
    (
        "BATCH_ID",
        "batch",
        "批次编号不是由其同步边、链上位置、默克尔根与游标算出的",
        "the batch id is not derived from its edge, chain position, root and cursor",
        False,
        R,
    ),
    (
        "BATCH_TIME",
        "batch",
        "批次清单的时间在未来或早于本边上一批次",
        "the manifest is dated in the future or before the edge's last batch",
        False,
        R,
    ),
    (
        "BATCH_CHAIN",
        "batch",
        "批次链不连续（重放、缺批或并发载入）",
        "the batch chain is broken (replayed, missing or concurrent batch)",
        True,
        R,
    ),
    (
        "BATCH_SCHEMA",
        "batch",
        "批次的数据结构与本节点不同",
        "the batch's schema differs from this node's",
        False,
        R,
    ),
    (
        "BATCH_ROWS",
        "batch",
        "批次行数与清单不符",
        "the batch's row count differs from its manifest",
        False,
        R,
    ),
    (
        "BATCH_ROOT",
        "batch",
        "批次内容与清单的默克尔根不符",
        "the batch's content does not match its manifest's Merkle root",
        False,
        R,
    ),
    # Rows (kept as failed transfers; the sync ends with exit 1)
    (
        "OWNER_CONFLICT",
        "row",
        "记录属于另一节点，且未经迁移释放",
        "the record belongs to another node, not released by a migration",
        False,
        ExitCode.REJECTED,
    ),
    # The spool and runs
    (
        "SPOOL_URI",
        "spool",
        "仅支持 file:// 运行目录地址",
        "only file:// run folder URIs are supported",
        False,
        R,
    ),
    (
        "SPOOL_MISSING",
        "spool",
        "运行目录中缺少上一步的文件（请重新运行同步）",
        "a file of the previous step is missing (run the sync again)",
        False,
        R,
    ),
    (
        "SPOOL_CORRUPT",
        "spool",
        "运行目录中的文件已损坏或被截断（请重新运行同步）",
        "a file of the run folder is damaged or truncated (run the sync again)",
        False,
        R,
    ),
    (
        "SPOOL_FORMAT",
        "spool",
        "运行目录中的文件来自另一版本或缺少字段（请重新运行同步）",
        "a file of the run folder is of another version or lacks a field (run the sync again)",
        False,
        R,
    ),
    (
        "SYNC_BUSY",
        "run",
        "另一个 tongban sync 正在运行本交换的同步",
        "another tongban sync is running this exchange",
        True,
        R,
    ),
    ("EDGE_BUSY", "run", "另一个同步正在运行这条边", "another sync is running this edge", True, R),
    ("RUN_FAILED", "run", "运行因意外错误失败", "the run failed with an unexpected error", True, R),
    (
        "DAG_RUN_FAILED",
        "run",
        "Airflow 的 DAG 运行失败（见失败任务的日志）",
        "an Airflow DAG run failed (see the failed task's log)",
        False,
        R,
    ),
    (
        "DAG_RUN_TIMEOUT",
        "run",
        "Airflow 的 DAG 运行超时未结束，已停止",
        "an Airflow DAG run did not finish in time and was stopped",
        False,
        R,
    ),
    # Maintenance: reconciling a child's library with its parent's (anti-entropy)
    (
        "RECONCILE_MISSING",
        "reconcile",
        "子库有而上级库缺少的记录",
        "a record the child's library holds is missing from the parent's",
        False,
        R,
    ),
    (
        "RECONCILE_EXTRA",
        "reconcile",
        "上级库有而子库没有的记录",
        "the parent's library holds a record of the child's that the child does not",
        False,
        R,
    ),
    (
        "RECONCILE_DIFFERENT",
        "reconcile",
        "上级库中的记录与子库不同",
        "a record differs between the child's library and the parent's",
        False,
        R,
    ),
    # Operator review of failed transfers (tongban failed ..., the review page)
    (
        "FAILED_CHANGED",
        "review",
        "这条失败传输在你查看之后已被他人处理或已变化：刷新后再操作",
        "the failed transfer changed (someone acted on it) since you looked: reload and act again",
        False,
        R,
    ),
    (
        "FAILED_CLOSED",
        "review",
        "这条失败传输已解决或已丢弃，不能再操作",
        "the failed transfer is already resolved or discarded",
        False,
        U,
    ),
    (
        "FAILED_IN_FLIGHT",
        "review",
        "这条失败传输正由一次同步运行发送：等运行结束后再操作",
        "the failed transfer is being sent by a sync run: act once that run ends",
        True,
        R,
    ),
    (
        "FAILED_NOT_RETRYABLE",
        "review",
        "这类失败传输不能从源重读（请投放改正的文件、重新提交或丢弃）",
        "this failed transfer cannot be re-read from its source (drop a corrected file, resubmit or discard)",
        False,
        U,
    ),
    (
        "FAILED_NOT_RESUBMITTABLE",
        "review",
        "只有从本地系统读入的被拒行可以修改后重新提交",
        "only a rejected row read from a local system can be edited and resubmitted",
        False,
        U,
    ),
    (
        "FAILED_EDIT_INVALID",
        "review",
        "修改后的行仍未通过校验，未提交",
        "the edited row still fails validation; nothing was submitted",
        False,
        U,
    ),
    (
        "FAILED_EDIT_KEY",
        "review",
        "修改改变了记录的主键（只能改正本身未通过校验的主键）",
        "the edit changes the record's key (only a key that itself failed validation may be corrected)",
        False,
        U,
    ),
    (
        "FAILED_EDIT_OWNER",
        "review",
        "修改会改变记录的所有者，或记录属于另一节点",
        "the edit would change the record's owner, or the record belongs to another node",
        False,
        U,
    ),
    (
        "FAILED_EDIT_FIELD",
        "review",
        "修改中的字段未知、不是文本或过长",
        "a field of the edit is unknown, not text, or too long",
        False,
        U,
    ),
    ("FAILED_REASON_REQUIRED", "review", "丢弃需要填写原因", "discarding needs a reason", False, U),
    (
        "FAILED_RETRY_NOT_FOUND",
        "review",
        "重试时源中已找不到这一行或文件",
        "a retry found the row or file gone from its source",
        False,
        R,
    ),
    (
        "FAILED_NO_FILTER",
        "review",
        "批量操作需要至少一个筛选条件（或明确选择全部）",
        "acting on many needs at least one filter (or an explicit choice of all)",
        False,
        U,
    ),
    (
        "REVEAL_FORBIDDEN",
        "review",
        "该操作员无权查看未脱敏的数据",
        "this operator is not allowed to reveal unmasked values",
        False,
        U,
    ),
    ("OPERATOR_EXISTS", "review", "已有同名操作员", "an operator of that name exists", False, U),
    ("OPERATOR_UNKNOWN", "review", "没有这个操作员", "no such operator", False, U),
    (
        "OPERATOR_NAME",
        "review",
        "操作员用户名应为 2–64 个字母、数字、点、横线或下划线",
        "an operator's username is 2-64 letters, digits, dots, dashes or underscores",
        False,
        U,
    ),
    (
        "OPERATOR_PASSWORD_WEAK",
        "review",
        "密码至少 12 个字符",
        "a password has at least 12 characters",
        False,
        U,
    ),
    # Verification for remote offices, attestations, offices, audit
    (
        "IDENTIFIER_INVALID",
        "verify",
        "出示的证件号码、代码或证照标识格式或校验位错误",
        "a presented number, code or license id is malformed or fails its check digit",
        False,
        U,
    ),
    (
        "PURPOSE_REQUIRED",
        "verify",
        "核验须说明用证事由（purpose）",
        "a verification needs its purpose (用证事由)",
        False,
        U,
    ),
    (
        "PURPOSE_UNKNOWN",
        "verify",
        "用证事由不在允许的列表中",
        "the purpose is not one of the listed purposes",
        False,
        U,
    ),
    (
        "SCOPE_DATASET",
        "verify",
        "该窗口的授权范围不含此数据集",
        "the office's scope does not include this dataset",
        False,
        U,
    ),
    (
        "SCOPE_DIVISION",
        "verify",
        "记录所在行政区划不在该窗口的授权范围内",
        "the record's division is outside the office's scope",
        False,
        U,
    ),
    ("SCOPE_SEARCH", "verify", "该窗口无检索权限", "the office's scope does not allow search", False, U),
    (
        "RATE_LIMITED",
        "verify",
        "请求过于频繁，超出该窗口的速率限制",
        "too many requests: the office's rate limit is exceeded",
        False,
        U,
    ),
    ("RECORD_NOT_FOUND", "verify", "库中没有该记录", "the library holds no such record", False, U),
    (
        "PROOF_UNAVAILABLE",
        "verify",
        "无法为该记录给出完整的来源证明（批次叶子或上级清单缺失）",
        "no complete provenance proof for this record (batch leaves or a manifest is missing)",
        False,
        U,
    ),
    (
        "STATUS_LIST_DATASET",
        "verify",
        "该数据集不发布状态列表（人口状态属个人信息）",
        "no status list is published for this dataset (a person's status is personal data)",
        False,
        U,
    ),
    (
        "NOT_READY",
        "verify",
        "服务尚未就绪（库、密钥或信任列表不可用）",
        "the service is not ready (library, key or trust list unavailable)",
        False,
        R,
    ),
    (
        "ATTEST_MALFORMED",
        "attest",
        "核验凭证不是完整的 JWT 或字段缺失",
        "the attestation is not a whole JWT or lacks a field",
        False,
        U,
    ),
    (
        "ATTEST_SIGNATURE",
        "attest",
        "核验凭证签名无效（被改动或伪造）",
        "the attestation's signature is invalid (altered or forged)",
        False,
        U,
    ),
    (
        "ATTEST_KEY_UNKNOWN",
        "attest",
        "签发核验凭证的密钥不在信任列表中",
        "the key that signed the attestation is not in the trust list",
        False,
        U,
    ),
    (
        "ATTEST_KEY_REVOKED",
        "attest",
        "签发核验凭证的密钥已吊销",
        "the key that signed the attestation is revoked",
        False,
        U,
    ),
    (
        "ATTEST_KEY_EXPIRED",
        "attest",
        "签发核验凭证的密钥在签发时不在有效期内",
        "the signing key was outside its validity when the attestation was issued",
        False,
        U,
    ),
    ("ATTEST_EXPIRED", "attest", "核验凭证已过有效期", "the attestation has expired", False, U),
    (
        "ATTEST_RECORD_CHANGED",
        "attest",
        "核验后记录已被吊销、暂扣、注销或转出（见状态列表）",
        "the record was revoked, suspended, cancelled or moved since the check (status list)",
        False,
        U,
    ),
    ("QR_UNREADABLE", "attest", "图片中读不出二维码", "no QR code can be read from the image", False, U),
    (
        "STATUS_LIST_INVALID",
        "attest",
        "状态列表无法读取或签名无效",
        "the status list cannot be read or its signature is invalid",
        False,
        U,
    ),
    ("OFFICE_EXISTS", "office", "该窗口代码已存在", "an office with this code exists", False, U),
    ("OFFICE_UNKNOWN", "office", "没有该窗口", "no such office", False, U),
    (
        "OFFICE_INVALID",
        "office",
        "窗口代码、授权范围或速率限制无效",
        "an office code, scope or rate limit is invalid",
        False,
        U,
    ),
    (
        "AUTH_REVOKED",
        "office",
        "该窗口的令牌已吊销或已轮换",
        "the office's token is revoked or was rotated",
        False,
        U,
    ),
    (
        "AUDIT_BROKEN",
        "audit",
        "审计日志被改动：有条目被修改、插入或删除",
        "the audit log was tampered with: an entry was altered, inserted or removed",
        False,
        R,
    ),
    (
        "AUDIT_CHECKPOINT",
        "audit",
        "审计检查点签名无效或与日志不符",
        "an audit checkpoint's signature is invalid or does not match the log",
        False,
        R,
    ),
    # The command line and the demo
    ("ARGUMENT_INVALID", "cli", "命令参数无效", "a command argument is invalid", False, U),
    ("FAILED_ID", "cli", "失败传输编号应为 节点:编号", "a failed transfer's id is NODE:NUMBER", False, U),
    ("FAILED_NOT_FOUND", "cli", "没有这条失败传输", "no such failed transfer", False, U),
    ("WORKDIR_UNWRITABLE", "cli", "工作目录无法写入", "the working folder cannot be written", False, U),
    (
        "WORKDIR_EXISTS",
        "demo",
        "工作目录已有演示数据（含用户修改）",
        "the working folder already holds a demo (with the user's changes)",
        False,
        U,
    ),
    (
        "AIRFLOW_DB",
        "demo",
        "无法初始化 Airflow 的元数据库",
        "Airflow's metadata database cannot be set up",
        False,
        R,
    ),
    ("AIRFLOW_RUN", "demo", "Airflow 运行演示失败", "Airflow failed to run the demo", False, R),
    # The audit log and the web app (verification API, service-window and review pages)
    (
        "AUDIT_INVALID",
        "audit",
        "审计条目字段无效或过大",
        "an audit entry field is invalid or too large",
        False,
        U,
    ),
    ("AUDIT_BUSY", "audit", "审计日志写入冲突过多", "too many concurrent writers on the audit log", True, R),
    ("AUTH_REQUIRED", "web", "需要登录或访问令牌", "a login or an access token is required", False, U),
    (
        "AUTH_INVALID",
        "web",
        "凭据错误、未知或已吊销",
        "the credentials are wrong, unknown or revoked",
        False,
        U,
    ),
    (
        "AUTH_THROTTLED",
        "web",
        "登录失败次数过多，请稍后再试",
        "too many failed logins; try again later",
        True,
        U,
    ),
    ("SESSION_EXPIRED", "web", "登录已过期，请重新登录", "the session has expired; log in again", False, U),
    (
        "CSRF_INVALID",
        "web",
        "表单校验码无效（请刷新页面重试）",
        "the form's CSRF token is invalid (reload the page)",
        False,
        U,
    ),
    ("SCOPE_DENIED", "web", "无权访问该数据或操作", "outside the caller's scope or rights", False, U),
    ("REQUEST_INVALID", "web", "请求字段缺失或无效", "a request field is missing or invalid", False, U),
    ("REQUEST_TOO_LARGE", "web", "请求体过大", "the request body is too large", False, U),
    ("NOT_FOUND", "web", "没有这个地址或对象", "no such address or object", False, U),
    ("METHOD_NOT_ALLOWED", "web", "此地址不支持该方法", "this address does not allow the method", False, U),
    ("INTERNAL", "run", "内部错误（程序缺陷）", "an internal error (a bug)", False, ExitCode.INTERNAL),
)

CATALOGUE: dict[str, ErrorCode] = {
    code: ErrorCode(code, area, zh, en, retryable, exit_code)
    for code, area, zh, en, retryable, exit_code in _ENTRIES
}


def lookup(code: str) -> ErrorCode:
    """The entry for ``code``; an undeclared code (a bug the tests catch) reads as INTERNAL."""
    return CATALOGUE.get(code) or CATALOGUE["INTERNAL"]


class TongbanError(Exception):
    """Any refusal: a stable code from :data:`CATALOGUE`, messages in Chinese and English, and where.

    ``where`` names the file (and line or field), edge or batch, so a person can go and look.
    """

    def __init__(self, code: str, message_zh: str, message_en: str, where: str = "") -> None:
        super().__init__(f"{code}: {message_en}" + (f" ({where})" if where else ""))
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.where = where

    @property
    def entry(self) -> ErrorCode:
        return lookup(self.code)

    @property
    def retryable(self) -> bool:
        """Whether a retry can help (a system or library down, a busy edge, a race lost)."""
        return self.entry.retryable

    @property
    def permanent(self) -> bool:
        """Bad input, bad signatures, bad config: retrying cannot help."""
        return not self.entry.retryable

    @property
    def exit_code(self) -> ExitCode:
        return self.entry.exit

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "where": self.where,
        }
