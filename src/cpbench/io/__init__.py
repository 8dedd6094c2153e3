"""Plumbing every capability shares: safe file writing (``files``) and tiled OME-TIFF (``ometiff``)."""
