"""Derives the matrices of Winograd's F(m, r) by the Toom-Cook construction (the points 0, 1,
-1, and for F(2, 5) and F(4, 3) 1/2 and -2, and infinity), as src/kernels/conv/winograd/transform.rs writes them: B^T's rows
scaled to integers, G taking the scale. Exact fractions; run `python3 scripts/winograd_matrices.py`."""
from fractions import Fraction as F
import sys
def mats(m, r, pts):
    a = m + r - 1
    fin = [F(p) for p in pts]
    assert len(fin) == a - 1
    def ev(n):  # alpha x n evaluation matrix
        rows = [[p**k for k in range(n)] for p in fin]
        rows.append([F(0)]*(n-1)+[F(1)])
        return rows
    Eh, Eg = ev(m), ev(r)
    V = ev(a)
    # invert V
    n = a
    M = [row[:] + [F(int(i==j)) for j in range(n)] for i,row in enumerate(V)]
    for c in range(n):
        piv = next(i for i in range(c,n) if M[i][c] != 0)
        M[c], M[piv] = M[piv], M[c]
        pv = M[c][c]; M[c] = [x/pv for x in M[c]]
        for i in range(n):
            if i != c and M[i][c] != 0:
                f = M[i][c]; M[i] = [x - f*y for x,y in zip(M[i], M[c])]
    Cint = [row[n:] for row in M]  # coefficients s = Cint v
    BT = [[Cint[j][i] for j in range(n)] for i in range(n)]  # Cint^T: row i = point i
    AT = [[Eh[j][i] for j in range(n)] for i in range(m)]
    G = [row[:] for row in Eg]
    # scale rows of BT to integers, move scale into G
    from math import lcm, gcd
    for i in range(n):
        den = lcm(*[x.denominator for x in BT[i]])
        BT[i] = [x*den for x in BT[i]]
        g = 0
        for x in BT[i]: g = gcd(g, int(x))
        BT[i] = [x/g for x in BT[i]]
        s = F(den, g)
        G[i] = [x/s for x in G[i]]
    return BT, AT, G
for (m, r, pts) in [(2,3,[0,1,-1]),(2,5,[0,1,-1,F(1,2),-2]),(4,3,[0,1,-1,F(1,2),-2])]:
    BT,AT,G = mats(m,r,pts)
    print(f"F({m},{r})")
    for name,M in [("BT",BT),("AT",AT),("G",G)]:
        print(name)
        for row in M: print("  ", [str(x) for x in row])
