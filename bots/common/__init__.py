"""What every matrix-nio bot of Wangxin shares: its saved session and sync position
(``storage``) and the login, sync, invitation and reply machinery (``matrix_bot``)."""
