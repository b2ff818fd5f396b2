from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_dct_orthonormal(dct_matrix):
    import numpy as np
    assert callable(dct_matrix), 'define a function dct_matrix(n)'
    c = np.asarray(dct_matrix(8), dtype=float)
    assert c.shape == (8, 8), f'dct_matrix(8) should be 8x8, got {c.shape}'
    assert np.allclose(c @ c.T, np.eye(8), atol=1e-09), 'C @ C.T should be the identity: check a_0 and a_k'
    assert np.allclose(c[0], c[0, 0]), 'row 0 (the DC basis function) should be constant'

