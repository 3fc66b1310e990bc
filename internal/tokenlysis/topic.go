package tokenlysis

// TopicScores is the live topic on which a finished recalculation is
// announced (payload: {"run_id", "scope", "to"}). The score streams listen
// to it; job events use the job's ID as their topic.
const TopicScores = "scores"
