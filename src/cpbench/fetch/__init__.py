"""The challenge images from Synapse (``cpbench fetch``), through the real synapseclient.

``catalogue`` (the three images, the local manifest; no synapseclient) · ``session`` (client,
probe, login, secrets) · ``remote`` (find the files by name) · ``local`` (what is on disk already)
· ``download`` (``fetch()``: download, resume, verify, record) · ``errors`` (one-line messages).
"""
