"""What only the instructor runs: `tito release`, `tito classroom` (provision, enroll, roster, regrade),
the sandbox that the trusted regrade runs student code in, and the threat model (SECURITY.md).

`tito release` leaves this whole folder out of the student template, so nothing in it may be needed by
`tito grade`, `tito module` or `tito milestone`.
"""
