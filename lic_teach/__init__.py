"""lic_teach: readable reference code for learned image compression."""
