"""PAM-TALK serving: the production back end of the PAM-TALK farm-to-buyer platform."""

__version__ = "0.1.0"
