"""The staff web UI: server-rendered pages for Talent Center caseworkers, team leads, the
data protection officer and administrators."""
