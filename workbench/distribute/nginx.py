"""An nginx ``server`` block that serves the update repository as static files (and proxies the API).

The repository is plain files with consistent snapshots, so a web server or CDN can
carry the polling load: only ``timestamp.json`` and ``root.json`` change in place;
everything else is written once under a new name and can be cached forever.
"""

from __future__ import annotations

from pathlib import Path

# Without "always": a 404 (a tower probing for the next root version) must not be cached.
IMMUTABLE = 'add_header Cache-Control "public, max-age=31536000, immutable";'
REVALIDATE = 'add_header Cache-Control "no-cache";'


def nginx_server_block(repository_root: Path, *, listen: str = "80",
                       server_name: str = "updates.example.internal",
                       api_upstream: str | None = "http://127.0.0.1:8470",
                       max_body: str = "50m") -> str:
    """The ``server { ... }`` block; ``api_upstream=None`` serves the repository only."""
    root = Path(repository_root).resolve()
    metadata, targets = root / "metadata", root / "targets"
    lines = [
        "server {",
        f"    listen {listen};",
        f"    server_name {server_name};",
        "    server_tokens off;",
        "    types { application/json json; application/gzip gz; }",
        "    default_type application/octet-stream;",
        "    etag on;                       # If-None-Match -> 304 for the no-change poll",
        "",
        "    # Half-written files start with a dot; never serve them.",
        r"    location ~ /\. { return 404; }",
        "",
        "    # The two files that change in place: caches must revalidate every time.",
    ]
    for name in ("timestamp.json", "root.json"):
        lines += [f"    location = /repository/metadata/{name} {{",
                  f"        alias {metadata / name};",
                  f"        {REVALIDATE}",
                  "    }"]
    lines += [
        "    # Versioned metadata and hash-prefixed bundles never change (consistent snapshots).",
        "    location /repository/metadata/ {",
        f"        alias {metadata}/;",
        f"        {IMMUTABLE}",
        "    }",
        "    location /repository/targets/ {",
        f"        alias {targets}/;",
        f"        {IMMUTABLE}",
        "    }",
    ]
    if api_upstream:
        lines += [
            "",
            "    # Reports, the quarantine upload and the fleet view go to `workbench serve`.",
            "    location /v1/ {",
            f"        proxy_pass {api_upstream};",
            f"        client_max_body_size {max_body};",
            "        proxy_set_header Host $host;",
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "    }",
            "    location = /metrics {",
            f"        proxy_pass {api_upstream};",
            "        allow 127.0.0.1;               # your Prometheus here",
            "        deny all;",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
