"""Model versions and their aliases (champion, challenger), approvals, and the atomic swap with rollback."""
