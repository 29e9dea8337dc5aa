package cdc

import "testing"

func TestComparePositions(t *testing.T) {
	pg := func(lsn, tx int64) Position { return Position{LSN: lsn, TxID: tx} }
	my := func(file string, pos, row int64) Position { return Position{File: file, Pos: pos, Row: row} }
	ss := func(commit, change string, serial int64) Position {
		return Position{CommitLSN: commit, ChangeLSN: change, EventSerialNo: serial}
	}
	tests := []struct {
		name      string
		connector string
		a, b      Position
		want      int
	}{
		{"pg equal", "postgresql", pg(34078720, 601), pg(34078720, 601), 0},
		{"pg lsn", "postgresql", pg(34078720, 601), pg(34131104, 602), -1},
		{"pg lsn wins over txid", "postgresql", pg(34131104, 600), pg(34078720, 601), 1},
		{"pg txid breaks ties", "postgresql", pg(34078720, 602), pg(34078720, 601), 1},

		{"mysql equal", "mysql", my("mysql-bin.000003", 154, 0), my("mysql-bin.000003", 154, 0), 0},
		{"mysql pos", "mysql", my("mysql-bin.000003", 362, 0), my("mysql-bin.000003", 717, 0), -1},
		{"mysql row", "mysql", my("mysql-bin.000003", 362, 2), my("mysql-bin.000003", 362, 1), 1},
		{"mysql file wins over pos", "mysql", my("mysql-bin.000003", 2443, 0), my("mysql-bin.000004", 4, 0), -1},
		{"mysql rollover", "mysql", my("mysql-bin.000009", 900, 0), my("mysql-bin.000010", 4, 0), -1},
		{"mysql suffix widens", "mysql", my("mysql-bin.999999", 4, 0), my("mysql-bin.1000000", 4, 0), -1},
		{"mysql rollover reversed", "mysql", my("mysql-bin.000010", 4, 0), my("mysql-bin.000009", 900, 0), 1},

		{"sqlserver equal", "sqlserver", ss("00000027:00000758:0005", "00000027:00000758:0003", 1), ss("00000027:00000758:0005", "00000027:00000758:0003", 1), 0},
		{"sqlserver commit", "sqlserver", ss("00000027:00000758:0005", "00000027:00000758:0003", 1), ss("00000027:00000760:0005", "00000027:00000758:0002", 1), -1},
		{"sqlserver change", "sqlserver", ss("00000027:00000758:0005", "00000027:00000758:0004", 1), ss("00000027:00000758:0005", "00000027:00000758:0003", 9), 1},
		{"sqlserver serial", "sqlserver", ss("00000027:00000758:0005", "00000027:00000758:0003", 1), ss("00000027:00000758:0005", "00000027:00000758:0003", 2), -1},
		{"sqlserver hex case", "sqlserver", ss("0000002a:000007ff:000f", "", 0), ss("0000002A:000007FF:000F", "", 0), 0},
		{"sqlserver hex beats decimal order", "sqlserver", ss("00000027:0000000a:0001", "", 0), ss("00000027:00000009:0001", "", 0), 1},
		{"sqlserver unpadded parts", "sqlserver", ss("27:758:3", "", 0), ss("00000027:00000758:0003", "", 0), 0},
		{"sqlserver bare hex", "sqlserver", ss("0x0000002700000758000a", "", 0), ss("00000027:00000758:0009", "", 0), 1},
		{"sqlserver null change lsn first", "sqlserver", ss("00000027:00000758:0005", "", 0), ss("00000027:00000758:0005", "00000027:00000758:0001", 0), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ComparePositions(tt.connector, tt.a, tt.b)
			if err != nil || got != tt.want {
				t.Errorf("ComparePositions(%s, %v, %v) = %d, %v; want %d", tt.connector, tt.a, tt.b, got, err, tt.want)
			}
			back, err := ComparePositions(tt.connector, tt.b, tt.a)
			if err != nil || back != -tt.want {
				t.Errorf("reversed = %d, %v; want %d", back, err, -tt.want)
			}
		})
	}
}

func TestComparePositionsErrors(t *testing.T) {
	tests := []struct {
		name      string
		connector string
		a, b      Position
	}{
		{"unknown connector", "oracle", Position{}, Position{}},
		{"binlog without suffix", "mysql", Position{File: "mysql-bin"}, Position{File: "mysql-bin.000001"}},
		{"binlog with letters", "mysql", Position{File: "mysql-bin.00000a"}, Position{File: "mysql-bin.000001"}},
		{"sqlserver not hex", "sqlserver", Position{CommitLSN: "0000002g:00000758:0005"}, Position{CommitLSN: "00000027:00000758:0005"}},
		{"sqlserver two parts", "sqlserver", Position{CommitLSN: "00000027:00000758"}, Position{CommitLSN: "00000027:00000758:0005"}},
		{"sqlserver part too long", "sqlserver", Position{CommitLSN: "00000027:00000758:00005"}, Position{CommitLSN: "00000027:00000758:0005"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ComparePositions(tt.connector, tt.a, tt.b); err == nil {
				t.Errorf("ComparePositions = %d, nil; want an error", got)
			}
		})
	}
}

func TestPositionString(t *testing.T) {
	tests := []struct {
		p    Position
		want string
	}{
		{Position{}, ""},
		{Position{LSN: 34078720, TxID: 601}, "lsn=34078720,txId=601"},
		{Position{File: "mysql-bin.000003", Pos: 154}, "file=mysql-bin.000003,pos=154,row=0"},
		{Position{File: "mysql-bin.000003", Pos: 154, Row: 2, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"}, "file=mysql-bin.000003,pos=154,row=2,gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:23"},
		{Position{CommitLSN: "00000027:00000758:0005", ChangeLSN: "00000027:00000758:0003", EventSerialNo: 1}, "commitLsn=00000027:00000758:0005,changeLsn=00000027:00000758:0003,eventSerialNo=1"},
		{Position{Trail: "00000000000000000000143"}, "trail=00000000000000000000143"},
		{Position{LSN: 1, Trail: "7"}, "lsn=1,txId=0,trail=7"},
	}
	buf := make([]byte, 0, 256)
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
		// AppendText writes the same after what the buffer holds.
		got, err := tt.p.AppendText(append(buf[:0], "prefix|"...))
		if err != nil || string(got) != "prefix|"+tt.want {
			t.Errorf("%#v.AppendText = %q, %v; want %q", tt.p, got, err, "prefix|"+tt.want)
		}
		if tt.p.IsZero() != (tt.want == "") {
			t.Errorf("%#v.IsZero() = %v, but String gives %q", tt.p, tt.p.IsZero(), tt.want)
		}
		if allocs := testing.AllocsPerRun(10, func() { buf, _ = tt.p.AppendText(buf[:0]) }); allocs != 0 {
			t.Errorf("%#v.AppendText allocates %.0f times into a buffer big enough", tt.p, allocs)
		}
	}
}
