"""mod_voicemail over ESL: its ``vm_*`` commands and what ``vm_list`` answers."""
