"""Cellpose's release history as a local git repository that asv can walk offline
(``cpbench cellpose-history``)."""
