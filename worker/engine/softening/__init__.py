"""Soft labels from hard ones (SPEC section 1): the softeners, the superpixel method and the distance transform."""
