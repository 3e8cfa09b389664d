"""report.md and report.html: blocks written once, rendered as Markdown and as HTML."""
