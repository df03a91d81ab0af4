"""The control-room console and the butler's phone view, served by the gateway.

Server-rendered pages (Jinja2) with htmx and its SSE extension, vendored under
`static/vendor/`. Every page goes through the same service functions and the same permission
table as the REST API (`gateway.api.permissions`); see docs/console.md.
"""
