"""The approval UI, served by the collector under /ui (mounted by `monitor.ui.mount.install`); its CLI is
`monitor.ui.cli`."""
